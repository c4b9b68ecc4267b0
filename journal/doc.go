// Package journal is kmsbridge's journal of intents: before each call that
// changes something and cannot simply be repeated (C_GenerateKey,
// C_GenerateKeyPair, CreateKey, ImportKeyMaterial, CreateAlias,
// UpdateAlias, TagResource, DeleteImportedKeyMaterial, and every later
// one), an intent is made durable with what will be called and how to find
// its effect afterwards; after the call, its outcome. A re-run of the same
// command reads the journal to find what an interrupted run did and
// finishes it instead of doing it twice.
//
// # Where it lives
//
// One file per token and KMS target, in the state directory: --state-dir,
// else $XDG_STATE_HOME/kmsbridge, else ~/.local/state/kmsbridge. The
// directory is created 0700 and each file 0600. The file is named
// <token-serial>@<target>.journal, where target is the KMS account when
// known and otherwise the region and endpoint the client is configured
// with (see Scope). The journal is always kept, with or without --record,
// so recovery never depends on the user having asked for a ceremony
// record; when there is a record, every journal entry is also appended to
// it (see Mirror), so the record tells the whole story.
//
// # Format
//
// JSON lines, one Entry per line, appended with O_APPEND and fsync'd before
// Append returns. An "intent" entry carries a fresh Attempt id, the
// operation, its target and the Find facts that locate its effect (for
// CreateKey: the tag kmsbridge:attempt=<Attempt> sent in the same call).
// The matching "outcome" entry has the same Attempt and a Result: "ok",
// "failed" (the call was refused; nothing happened) or "unknown" (the
// answer was lost: the call may have taken effect). An intent with no
// outcome is "unfinished": the process stopped between the two.
//
// # Crash safety
//
// Because an intent is fsync'd before its call, a journal whose last line
// is torn (no newline) means the call after it was never made; Open moves
// the torn bytes to <file>.torn-<time> (kept as evidence) and reports it.
// An intent that cannot be written stops the command before the call
// (fail closed), and an outcome that cannot be written stops it before the
// next change.
//
// # Compaction
//
// The journal would otherwise grow with every run for the life of a token:
// eight entries per imported key, about 2.4 KB, all read by every run.
// When Open finds more than 10,000 entries, it moves the
// entries of every attempt that finished (an outcome other than unknown;
// notes too) more than 90 days ago to <file>.archive, which
// kmsbridge never reads and keeps as evidence, and notes the move in the
// journal. Unfinished attempts stay however old. A re-run within the
// retention finishes what an interrupted run left; after it, a key the run
// generated is no longer known as its own, and the re-run says to import
// it by label without --generate (KMS keys are still found by their link
// tags). Compaction never replaces the file (its lock is on the file): it
// writes the whole new journal to <file>.compacting first, then rewrites
// the journal in place; Open finishes a compaction a crash interrupted.
//
// # Concurrency
//
// Open takes an exclusive flock on the file and waits for it, so two
// kmsbridge processes working on the same token and KMS target run one
// after the other and the second sees what the first did.
package journal
