package aws

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// KMS is eventually consistent (docs/kms-input-rules.md, "Eventual
// consistency"): right after CreateKey, GetParametersForImport may answer
// NotFoundException; right after ReplicateKey, DescribeKey in the replica's
// Region may; and ListKeys may not list a key made moments ago. kmsbridge
// only ever waits for a key it knows exists because this run made it; a
// NotFoundException for any other key still means a wrong --kms-key-id.

// ConsistencyWindow bounds how long a run waits for KMS to know a key it
// has just created or replicated, and how long a lost CreateKey answer is
// searched for before the run stops rather than risk a second key.
// Importer.ConsistencyWindow overrides it.
const ConsistencyWindow = 2 * time.Minute

func (im *Importer) consistencyWindow() time.Duration {
	if im.ConsistencyWindow > 0 {
		return im.ConsistencyWindow
	}
	return ConsistencyWindow
}

// isNotFound says whether err is KMS's NotFoundException.
func isNotFound(err error) bool {
	var ke *kmsimport.KMSError
	return errors.As(explain("", err), &ke) && ke.Code == "NotFoundException"
}

// untilKnown calls call, and while it answers NotFoundException for keyID,
// a key this run created or replicated moments ago, calls it again with a
// growing pause, for at most the consistency window. Every wait is logged
// and counted in r.consistencyWaits, so the step's summary can say so.
func untilKnown[T any](ctx context.Context, r *run, op, keyID, why string, call func(context.Context) (T, error)) (T, error) {
	start := time.Now()
	pause := 250 * time.Millisecond
	for {
		out, err := call(ctx)
		if err == nil || !isNotFound(err) {
			return out, err
		}
		waited := time.Since(start)
		if waited+pause > r.im.consistencyWindow() {
			var zero T
			return zero, &kmsimport.KMSError{Op: op, Code: "NotFoundException", Transient: true,
				Message: fmt.Sprintf("KMS still does not know key %s %s after %s", keyID, why, waited.Round(time.Second)),
				Advice:  "KMS is eventually consistent and has not caught up yet; the key exists, so run the same command again in a few minutes: it takes up the key and finishes"}
		}
		r.consistencyWaits++
		r.logInfo("KMS does not know the key yet (eventual consistency); trying again", "op", op, "kmsKeyId", keyID, "why", why, "retryIn", pause.String())
		if err := sleep(ctx, pause); err != nil {
			var zero T
			return zero, err
		}
		if pause *= 2; pause > 5*time.Second {
			pause = 5 * time.Second
		}
	}
}

// consistencyNote is what a step's summary adds when it had to wait.
func (r *run) consistencyNote() string {
	if r.consistencyWaits == 0 {
		return ""
	}
	n := r.consistencyWaits
	r.consistencyWaits = 0
	return fmt.Sprintf(" (KMS answered NotFoundException %d time(s) for the key just made, as its eventual consistency allows; kmsbridge waited and asked again)", n)
}

// findAttemptKey settles a CreateKey whose answer was lost: it looks for the
// key by its attempt tag, again and again while the attempt is younger than
// the consistency window, because ListKeys may not list a key made moments
// ago. A key still not found is not taken as proof that none was made:
// the run stops with the CreateKey's outcome unknown, and a later re-run
// (when KMS lists every key) finds it by its link tags or creates it.
func (r *run) findAttemptKey(ctx context.Context, attempt string) (string, error) {
	start := time.Now()
	pause := 500 * time.Millisecond
	for {
		id, err := r.view().ByAttempt(ctx, attempt)
		if err != nil || id != "" {
			return id, err
		}
		waited := time.Since(start)
		if waited+pause > r.im.listingWindow() {
			return "", &kmsimport.KMSError{Op: "CreateKey", Transient: true,
				Message: fmt.Sprintf("the answer to CreateKey was lost, and after %s no KMS key with tag %s=%s is listed", waited.Round(time.Second), TagAttempt, attempt),
				Advice:  "KMS may list a new key only after a while, so kmsbridge does not create another one now; run the same command again in a few minutes: it finds the key by its tags if it was made, and creates it if not"}
		}
		r.logInfo("CreateKey's answer was lost and its key is not listed yet (ListKeys is eventually consistent); looking again", "attempt", attempt, "retryIn", pause.String())
		if err := sleep(ctx, pause); err != nil {
			return "", err
		}
		if pause *= 2; pause > 5*time.Second {
			pause = 5 * time.Second
		}
	}
}

// listingWindow is how long a lost CreateKey is searched for: a tenth of
// the consistency window, at least 5 seconds.
func (im *Importer) listingWindow() time.Duration {
	if w := im.consistencyWindow() / 10; w > 5*time.Second {
		return w
	}
	return 5 * time.Second
}

// describeFresh is DescribeKey of a key this run just created or
// replicated, waiting out KMS's eventual consistency.
func describeFresh(ctx context.Context, r *run, api API, keyID, why string) (*types.KeyMetadata, error) {
	out, err := untilKnown(ctx, r, "DescribeKey", keyID, why, func(ctx context.Context) (*kms.DescribeKeyOutput, error) {
		return api.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
	})
	if err != nil {
		return nil, explain("DescribeKey", err)
	}
	return out.KeyMetadata, nil
}
