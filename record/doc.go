// Package record keeps the ceremony record: an append-only file in which
// every kmsbridge command that changes something writes what it did, in a
// form an auditor can check years later without kmsbridge.
//
// # The file
//
// A record is a UTF-8 text file of JSON lines (https://jsonlines.org): one
// entry per line, each line ending in a single "\n" (LF), nothing else in
// the file. Lines are never rewritten or removed; kmsbridge only appends, and
// refuses to append to a record that does not verify.
//
// Each line is one JSON object, written in the canonical form of RFC 8785
// (JSON Canonicalization Scheme, JCS): no whitespace between tokens, object
// members sorted by name (UTF-16 code units), strings with only the escapes
// JCS requires ("\"", "\\", \b \f \n \r \t, \u00xx for other control
// characters; everything else as literal UTF-8), integers as plain decimals.
// A line that is not exactly the canonical form of its own content is
// reported as "not-canonical": a record written by kmsbridge never has one,
// so it means the line was changed by something else.
//
// The members of an entry (format "kmsbridge-record/3") are:
//
//	Version    "kmsbridge-record/3", the format of this entry
//	Tool       the kmsbridge build that wrote the entry: {"Commit","Version"},
//	           both strings; Version is the release tag ("v0.1.0"), a Go
//	           pseudo-version for an untagged commit
//	           ("v0.0.0-20261130030405-201932f01234") or "(devel)", ending in
//	           "+dirty" when built from a tree with uncommitted changes;
//	           Commit is the full lowercase hex git commit, or "" when the
//	           binary was built without VCS information (then Version names
//	           the source)
//	Seq        1 for the first entry of the record, then one more per entry
//	Time       when the entry was written, RFC 3339 in UTC with milliseconds,
//	           "2026-05-04T09:30:00.000Z"
//	Operator   who ran the command (default: the operating-system user)
//	Host       the machine it ran on (os.Hostname)
//	Command    the kmsbridge command ("import", "wrap", "audit-key create", ...)
//	Step       the step of the command this entry records ("generate", "wrap", ...)
//	Inputs     object of string to string: what the step used, by identity or
//	           digest (key ids, labels, ARNs, fingerprints, SHA-256 of files)
//	Outputs    object of string to string: what the step produced, likewise
//	Token      null, or the HSM token the step used: {"Firmware","Label",
//	           "Manufacturer","Model","Serial","Slot"}, all strings
//	Outcome    "ok" or "error"
//	Error      "" when Outcome is "ok", otherwise what went wrong
//	Prev       the previous entry's hash (below): lowercase hex SHA-256 of
//	           the previous entry's signed bytes when it is of format 3, of
//	           the previous line's bytes (without its "\n") when it is of
//	           format 1 or 2; for the first entry, 64 zeros
//	Signature  absent when the entry is unsigned, otherwise {"Algorithm",
//	           "KeyId", "PublicKeySha256", "Value"}, see below
//
// An entry's hash is what the entry after it names as Prev: for an entry
// of format 3, SHA-256 of its signed bytes (its line without the Signature
// member, see "What is signed"); for an entry of an earlier format, SHA-256
// of its whole line. The record's head is its last entry's hash.
//
// Entries of the earlier formats have the same members, but their hash is
// that of the whole line, signature included: "kmsbridge-record/2" (written
// by kmsbridge until 2026-12-07) and "kmsbridge-record/1" (which has no
// Tool). kmsbridge still verifies them and appends "/3" entries after them,
// so one record may hold several formats, in that order: an entry of an
// earlier format after one of format 3 is refused ("unsupported-version").
// Each line's Version says which members it must have and what its hash is.
//
// Inputs and Outputs never hold secrets: no PIN, password, key material,
// plaintext or AWS import token, only their digests or identities. The
// writer refuses a name that says otherwise (see Writer.Append).
//
// # Steps that are not a command's own
//
// Besides each command's steps, a record holds these entries:
//
//	journal-intent   written before a call that changes the HSM or KMS and
//	                 cannot simply be repeated (C_GenerateKey,
//	                 C_GenerateKeyPair, CreateKey, ImportKeyMaterial,
//	                 CreateAlias, TagResource, DeleteImportedKeyMaterial, ...),
//	                 after the same intent is durable in the journal of
//	                 intents (package journal). Outputs: Op (the call),
//	                 Attempt (its id, unique), Target* (what it acts on:
//	                 TargetKeyLabel, TargetKmsKeyId, TargetTokenSerial, ...)
//	                 and Find* (how its effect is found if its answer is
//	                 lost; FindTagKmsbridgeAttempt is the value of the tag
//	                 kmsbridge:attempt the CreateKey carried).
//	journal-outcome  the call's outcome, with the intent's Op and Attempt and
//	                 Result: "ok" (Outcome "ok"; other Outputs are what it
//	                 produced, e.g. KmsKeyId, HsmKeyId, KeyMaterialId),
//	                 "failed" (KMS or the token refused; it took no effect) or
//	                 "unknown" (the answer was lost; it may have taken
//	                 effect), both with Outcome "error" and the Error. An
//	                 intent without an outcome means the process stopped
//	                 between the two.
//	journal-progress what an open long intent learnt, under its Attempt: the
//	                 Rotation intent (Op "Rotation", written before a
//	                 rotation's first change, closed by a journal-outcome
//	                 after its verification) records ToHsmKeyId,
//	                 NewKeyMaterialId, NewKmsKeyId as it learns them.
//	journal-note     a fact that is not a call, by Op: "resume" (this run
//	                 took up what an earlier one made, named in the Outputs),
//	                 "settled <call>" (a lost answer's effect was found),
//	                 "interrupted", "allow-second-kms-key", "prepared",
//	                 "torn-line" (the journal's own torn line, moved aside).
//	journal-adopted  the journal of an earlier kmsbridge (its scope named no
//	                 AWS account) was taken over: From, MovedTo (the old
//	                 file, kept), Journal (the journal it joined).
//	interrupted      SIGINT or SIGTERM stopped the command between two steps
//	                 (or during one); Outcome "error".
//	repair-torn-line written by kmsbridge record repair (Command "record
//	                 repair") after it moved a torn last line out of the
//	                 record: TornBytesFile (where the bytes are kept),
//	                 TornBytesSha256, TornBytesLength.
//
// A record can therefore be read as the journal of the ceremony: every
// change is announced before it is made, and its outcome, including "we do
// not know", is written after.
//
// # What is signed
//
// An entry may be signed by an audit key kept in the HSM (kmsbridge
// audit-key create). The signed bytes of an entry are the canonical (JCS)
// form of the entry with the Signature member removed. Because a line is
// itself canonical, and Signature is the only member removed, an unsigned
// line is exactly its own signed bytes. The signature is
//
//	Algorithm        "ECDSA_P256_SHA256"
//	Value            standard base64 (with padding) of the DER ECDSA-Sig-Value
//	                 (SEQUENCE { r INTEGER, s INTEGER }) over SHA-256 of the
//	                 signed bytes, with the audit key's P-256 private key
//	KeyId            lowercase hex of the audit key's CKA_ID in the HSM
//	PublicKeySha256  lowercase hex SHA-256 of the audit public key's DER
//	                 SubjectPublicKeyInfo (the bytes inside its PEM)
//
// KeyId and PublicKeySha256 are not themselves signed: they say which key
// to check with, and a verifier given the public key compares
// PublicKeySha256 with it before checking the signature.
//
// The entry of an audit key's birth (Command "audit-key create", Step
// "audit-key-create") carries the new public key in Outputs:
// AuditPublicKey is the standard base64 of its DER SubjectPublicKeyInfo,
// AuditPublicKeySha256 its fingerprint, AuditKeyId its CKA_ID; the entry
// is the key's first signature. A verifier without the public key may
// check the record against that key (kmsbridge record verify without
// --public-key does): it proves the entries were signed by the key the
// record itself created, and so only means something once that key's
// fingerprint is compared with the one the officers wrote on the paper
// script (--expect-audit-key), since anyone can make a whole record with
// a key of their own.
//
// Entries may be unsigned where no HSM was at hand: the commands that
// never open the token (prepare, upload, delete-material, record repair).
// A verifier that accepts unsigned entries (--allow-unsigned) accepts
// them from those commands only, and only against the head written down,
// because unsigned entries at the end of a record can be rewritten and
// re-chained by anyone.
//
// To verify a record by hand, for each line i (counting from 1):
//
//  1. parse it as JSON; it must be an object with exactly the members
//     above for its Version, and re-serialising it with JCS must give the
//     line back;
//  2. Seq must be one more than the previous line's Seq (1 on line 1);
//  3. Prev must equal the hash of entry i-1, or 64 zeros on line 1: for
//     an entry i-1 of format 3, hex(SHA-256(its signed bytes)), the bytes
//     of step 4; for one of format 1 or 2, hex(SHA-256(line i-1 without
//     its "\n"));
//  4. if the record is signed: remove Signature, serialise with JCS, and
//     check Value with ECDSA P-256 over SHA-256 of those bytes under the
//     audit public key whose SHA-256 is PublicKeySha256.
//
// In Python 3, for the data kmsbridge writes (ASCII member names),
// json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
// is the JCS serialisation of steps 1 and 4.
//
// # What the record proves, and what it cannot
//
// The chain of Prev digests makes an edited, deleted, inserted or reordered
// entry visible at the entry after it; Seq names the gap; a signature shows
// which entry was changed and that the audit key (which never leaves the
// HSM) wrote it. A line cut short (the write interrupted, or the file
// truncated mid-line) lacks its "\n" and is reported as "truncated".
//
// # Why Prev leaves the signature out (format 3)
//
// In format 2 each entry's Prev was the hash of the whole line before it,
// signature included, so an entry could not be chained until the entry
// before it was signed, and a bulk run's entries were signed in the token
// one at a time under the writer's lock: the record, not the HSM or KMS,
// set the pace of a 16-way import. In format 3 Prev is the hash of the
// previous entry's signed bytes, which are known as soon as that entry is
// given its Seq, Time and Prev. The writer fixes those three under its
// lock, in the order appends arrive; the audit key signs outside the lock
// (the token signs on a session per signature, so several at once); each
// line is written once every line before it is (Seq order, one write(2)
// each), and Append returns only after an fsync that began after its
// write, shared with the appends around it (group commit). An entry whose
// signature fails is not written; the entries chained after it are chained
// again, in their turn, to the last entry written and signed again, so the
// file never has a gap.
//
// What this keeps, for a record checked against the audit key (--public-key,
// or the record's own key compared with the paper):
//
//   - Every entry's content (all members but Signature) is fixed by its
//     signature, which the token made over bytes that include Prev, so each
//     signed entry vouches for the content of the one before it, back to
//     the first: a changed, deleted, inserted, reordered or substituted
//     entry breaks the chain at the entry after it (Seq names the gap), and
//     a forger cannot re-chain what follows without the audit key, whose
//     signatures then fail (TestVerify, TestFormat2RecordTamperingIsStillFound).
//     An entry of another record signed by the same key does not fit: its
//     Prev names that record's entry.
//   - A signature removed or changed is found at its own entry, by the
//     signature check ("unsigned", "bad-signature", "wrong-key") instead of
//     at the next entry's chain. The one change the chain no longer notices
//     is a signature replaced by another valid signature of the audit key
//     over the same bytes (ECDSA signatures are randomised, and (r, s) and
//     (r, n-s) both verify): the entry then says exactly what it said, by
//     the same key, so what the record asserts is unchanged.
//   - Entries cut from the end: the head (the last entry's hash) and the
//     count written on the paper script catch them as before. The head is
//     now of the last entry's signed bytes: removing the last entry's
//     signature leaves the head as it was, and is caught as "unsigned".
//   - What a crash can lose is unchanged: Append acknowledges an entry only
//     once its line and every line before it are durable, and lines reach
//     the file in Seq order, so a crash leaves the entries acknowledged, in
//     order, possibly followed by entries not yet acknowledged and a torn
//     last line ("truncated", which record repair moves aside).
//     AppendWritten acknowledges an entry once written, and the next
//     Append or Sync (of any appender: an fsync covers every line before
//     it) once durable; a bulk run uses it for entries that announce no
//     change, and waits before every change and before it reports a key
//     (docs/exactly-once.md, "Durable when it must be").
//
// A chain-only check (--chain-only) shows, as before, only that the file is
// self-consistent; it now also does not notice a signature removed or
// changed, which in format 2 broke the chain. It never said who wrote the
// record: anyone can re-chain an unsigned file.
//
// What the file alone cannot show is that whole entries were removed from
// its end: the shortened file is a valid record. The head digest (SHA-256
// of the last line, as the next entry's Prev would be) and the entry count
// close that gap when they are kept somewhere else: the officers write both,
// with the audit key's fingerprint, on the paper ceremony script at the end
// of the ceremony, and VerifyOptions.ExpectHead, ExpectCount and
// ExpectAuditKey check the file against them.
package record
