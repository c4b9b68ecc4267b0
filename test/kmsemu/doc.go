// Package kmsemu is a local emulator of the AWS KMS JSON API, for tests.
//
// A [Server] is an [net/http.Handler] that speaks the awsJson1.1 protocol
// exactly as AWS KMS does (POST /, X-Amz-Target: TrentService.<Operation>,
// base64 blobs, epoch-second timestamps, errors as {"__type","message"} with
// an X-Amzn-ErrorType header), so the real aws-sdk-go-v2 KMS client and the
// aws CLI work against it unchanged. It ignores SigV4 signatures: any
// credentials are accepted.
//
// It emulates what the key-import flow needs: CreateKey, DescribeKey,
// ListKeys, the alias and tag operations, EnableKey/DisableKey,
// ScheduleKeyDeletion/CancelKeyDeletion, GetParametersForImport,
// ImportKeyMaterial, DeleteImportedKeyMaterial, Encrypt and Decrypt, for
// SYMMETRIC_DEFAULT keys only. Imported key material is really unwrapped with
// the wrapping private key (RSAES-OAEP or RSA-OAEP + RFC 5649 AES key wrap),
// and the KMS rules around it (import tokens, expiry, same material on
// re-import) raise the exceptions KMS raises. Other KMS operations answer
// UnsupportedOperationException; names KMS does not know answer
// UnknownOperationException.
//
// # Emulator-only operations
//
// These exist only in the emulator; real KMS answers UnknownOperationException.
// They are sent like any other operation (X-Amz-Target: TrentService.<Name>).
//
//   - KmsBridgeGetKeyCheckValue: {"KeyId": string} ->
//     {"KeyId": key ARN, "KeyCheckValue": "A1B2C3", "KeyMaterialId": 64 hex}.
//     KeyCheckValue is the first 3 bytes of AES-ECB(material, 16 zero bytes),
//     uppercase hex, the value an HSM reports for the same AES key. The material
//     itself is never returned. KMSInvalidStateException if the key has no
//     usable material.
//   - KmsBridgeAdvanceClock: {"Seconds": number >= 0} -> {"Now": epoch seconds}.
//     Moves the emulator's clock forward, so tests can make key material reach
//     its ValidTo, import parameters expire and pending deletions complete.
//
// # Choices where KMS's behaviour is not documented
//
//   - ImportKeyMaterial: ImportType defaults as the SDK documents it
//     (NEW_KEY_MATERIAL for a key that never had material, else
//     EXISTING_KEY_MATERIAL); an explicit NEW_KEY_MATERIAL is accepted for the
//     first import and answers UnsupportedOperationException afterwards; an
//     explicit EXISTING_KEY_MATERIAL is accepted for the first import.
//   - RSA_AES_KEY_WRAP_*: the ephemeral key must be AES-256, as KMS's guide
//     instructs; anything else is InvalidCiphertextException.
//   - An alias or alias ARN given to an operation that takes only a key ID or
//     key ARN, and a well-formed ARN of another account or region, are
//     NotFoundException.
//   - Decrypt of a ciphertext whose key has been deleted is NotFoundException.
//
// # Not emulated
//
// Key specs other than SYMMETRIC_DEFAULT (CreateKey answers
// UnsupportedOperationException), multi-Region keys, custom key stores,
// on-demand rotation of imported material (RotateKeyOnDemand,
// ListKeyRotations), key policies (Policy is accepted and ignored), grants,
// authorization and SigV4 verification, AWS managed keys and their alias/aws/
// aliases, DryRun, Recipient, throttling, quotas other than 50 tags per key,
// and eventual consistency: every change is visible to the next request.
// Ciphertexts use the emulator's own format, so they only decrypt on the
// Server that made them; nothing is persisted.
//
// With [Options].ArtifactsDir set, every ImportKeyMaterial call also leaves a
// file import-NNN.json there (see [Options]) so a test can check the wrapped
// blob independently, for example with openssl pkeyutl.
package kmsemu
