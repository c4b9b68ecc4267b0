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
// With [Options].ArtifactsDir set, every ImportKeyMaterial call also leaves a
// file import-NNN.json there (see [Options]) so a test can check the wrapped
// blob independently, for example with openssl pkeyutl.
package kmsemu
