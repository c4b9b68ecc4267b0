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
// The members of an entry (format "kmsbridge-record/2") are:
//
//	Version    "kmsbridge-record/2", the format of this entry
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
//	Prev       lowercase hex SHA-256 of the previous line's bytes, without its
//	           "\n"; for the first entry, 64 zeros
//	Signature  absent when the entry is unsigned, otherwise {"Algorithm",
//	           "KeyId", "PublicKeySha256", "Value"}, see below
//
// Entries of the earlier format "kmsbridge-record/1" have the same members
// without Tool; kmsbridge still verifies them and appends "/2" entries after
// them, so one record may hold both. Each line's Version says which
// members it must have.
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
//  3. Prev must equal hex(SHA-256(line i-1 without its "\n")), or 64 zeros
//     on line 1;
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
// What the file alone cannot show is that whole entries were removed from
// its end: the shortened file is a valid record. The head digest (SHA-256
// of the last line, as the next entry's Prev would be) and the entry count
// close that gap when they are kept somewhere else: the officers write both,
// with the audit key's fingerprint, on the paper ceremony script at the end
// of the ceremony, and VerifyOptions.ExpectHead, ExpectCount and
// ExpectAuditKey check the file against them.
package record
