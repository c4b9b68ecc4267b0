package aws

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/ownership"
)

// TagAttempt is the tag a kmsbridge CreateKey carries, in the same call,
// with the journal's attempt id: if the answer is lost, the key it made
// is found by this tag, never by guessing.
const TagAttempt = ownership.TagAttempt

// ChangeAttempts is how often kmsbridge sends one change to KMS when its
// answer is lost or KMS fails transiently; before each resend it checks
// that the earlier attempt took no effect.
const ChangeAttempts = 4

// ThrottleAttempts is how many more times kmsbridge sends a change that
// KMS refused with ThrottlingException. A throttled request did nothing,
// so it needs no check; its re-sends do not count against ChangeAttempts,
// and with backoff up to MaxBackoff they span about half a minute: long
// enough for a bulk run meeting a quota lower than kmsbridge's client-side
// limits to go on, as the SDK's adaptive mode slows the client down.
const ThrottleAttempts = 10

// Outcome of one KMS call, for the journal.
func outcomeOf(err error) string {
	if err == nil {
		return journal.ResultOK
	}
	if maybeReachedKMS(err) {
		return journal.ResultUnknown
	}
	return journal.ResultFailed
}

// maybeReachedKMS says whether a failed call may have taken effect: its
// answer was lost (reset, closed, timeout, cancelled) or KMS failed
// internally (5xx). A refusal (4xx, including throttling), a request that
// was never sent (no credentials, a refused connection) took no effect.
func maybeReachedKMS(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		var re interface{ HTTPStatusCode() int }
		if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
			return true
		}
		switch apiErr.ErrorCode() {
		case "KMSInternalException", "DependencyTimeoutException", "InternalFailure", "InternalError", "ServiceUnavailable":
			return true
		}
		return false
	}
	if neverSent(err) {
		return false
	}
	var (
		sendErr *smithyhttp.RequestSendError
		desErr  *smithy.DeserializationError
		netErr  net.Error
	)
	return errors.As(err, &sendErr) || errors.As(err, &desErr) || errors.As(err, &netErr) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// neverSent says whether the request certainly never left this host.
func neverSent(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}

// transient says whether the same call may succeed if sent again.
// throttling says whether KMS refused the request for its request rate.
func throttling(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "ThrottlingException"
}

func transient(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "ThrottlingException", "KMSInternalException", "DependencyTimeoutException", "InternalFailure", "InternalError", "ServiceUnavailable":
			return true
		}
		var re interface{ HTTPStatusCode() int }
		return errors.As(err, &re) && re.HTTPStatusCode() >= 500
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	// A reset, a closed connection, a timeout, a refused connection.
	return neverSent(err) || maybeReachedKMS(err)
}

// change is one call that changes something in KMS, journaled.
type change struct {
	op     string
	target map[string]string
	// attempt, when set, is the attempt id the call carries (CreateKey's
	// tag); a fresh one is made for each send otherwise.
	attempt func() string
	find    map[string]string
	// call sends the request once and returns what it produced.
	call func(ctx context.Context, attempt string) (map[string]string, error)
	// settle looks for the effect of an attempt whose answer was lost:
	// done with its facts when it took effect.
	settle func(ctx context.Context, attempt string) (done bool, facts map[string]string, err error)
}

// LostError is a change whose answer was lost and whose effect could not
// be established: "unknown: the request may have reached KMS".
type LostError struct {
	Op      string
	Attempt string
	Err     error
}

func (e *LostError) Error() string {
	return fmt.Sprintf("%v (unknown whether %s took effect: the request may have reached KMS; attempt %s in the journal)", e.Err, e.Op, e.Attempt)
}

func (e *LostError) Unwrap() error { return e.Err }

// do runs c: intent, call, outcome; on a lost answer or a transient
// failure it settles (looks for the effect) and sends again, at most
// ChangeAttempts times, plus ThrottleAttempts re-sends of a throttled
// request. Journal failures stop it (fail closed).
func (r *run) do(ctx context.Context, c change) (map[string]string, error) {
	var last error
	var lastAttempt string
	for n, throttled := 0, 0; n < ChangeAttempts; {
		if sent := n + throttled; sent > 0 {
			if err := sleep(ctx, backoff(sent)); err != nil {
				return nil, r.lost(c.op, lastAttempt, last)
			}
		}
		attempt := journal.NewAttemptID()
		if c.attempt != nil {
			attempt = c.attempt()
		}
		find := map[string]string{}
		for k, v := range c.find {
			find[k] = v
		}
		if c.op == "CreateKey" {
			find["tag:"+TagAttempt] = attempt
		}
		p, err := r.im.Journal.Intend(journal.Intent{Attempt: attempt, Command: r.command(), Op: c.op, Target: c.target, Find: find})
		if err != nil {
			return nil, fmt.Errorf("%w: %v", kmsimport.ErrJournal, err)
		}
		kmsimport.CrashAt("intent:" + c.op)
		facts, callErr := c.call(ctx, attempt)
		kmsimport.CrashAt("called:" + c.op)
		result := outcomeOf(callErr)
		if callErr != nil && result == journal.ResultUnknown {
			r.unknown = append(r.unknown, c.op)
		}
		if err := p.Done(result, facts, callErr); err != nil {
			if callErr == nil {
				return facts, fmt.Errorf("%w: %s succeeded but %v", kmsimport.ErrJournal, c.op, err)
			}
			return nil, fmt.Errorf("%w: %v", kmsimport.ErrJournal, err)
		}
		if callErr == nil {
			r.settled(c.op)
			return facts, nil
		}
		last, lastAttempt = callErr, attempt
		if !transient(callErr) || errors.Is(callErr, context.Canceled) || ctx.Err() != nil {
			if result == journal.ResultUnknown {
				return nil, r.lost(c.op, attempt, callErr)
			}
			return nil, explain(c.op, callErr)
		}
		if result == journal.ResultUnknown && c.settle != nil {
			done, facts, err := c.settle(ctx, attempt)
			if err != nil {
				return nil, r.lost(c.op, attempt, callErr)
			}
			if done {
				if err := r.im.Journal.Note(r.command(), "settled "+c.op, mergeFacts(facts, map[string]string{"Attempt": attempt})); err != nil {
					return nil, fmt.Errorf("%w: %v", kmsimport.ErrJournal, err)
				}
				r.settled(c.op)
				r.logInfo("the answer to "+c.op+" was lost, but it took effect", "attempt", attempt)
				return facts, nil
			}
		}
		if throttling(callErr) && throttled < ThrottleAttempts {
			throttled++
		} else {
			n++
		}
		r.logInfo(c.op+" failed transiently; trying again", "attempt", attempt, "error", callErr.Error())
	}
	if outcomeOf(last) == journal.ResultUnknown {
		return nil, r.lost(c.op, lastAttempt, last)
	}
	return nil, explain(c.op, last)
}

func (r *run) lost(op, attempt string, err error) error {
	return &LostError{Op: op, Attempt: attempt, Err: explain(op, err)}
}

// settled removes op from the calls whose effect is unknown.
func (r *run) settled(op string) {
	for i, u := range r.unknown {
		if u == op {
			r.unknown = append(r.unknown[:i], r.unknown[i+1:]...)
			return
		}
	}
}

func (r *run) command() string {
	if r.im.Command != "" {
		return r.im.Command
	}
	return "import"
}

func (r *run) logInfo(msg string, args ...any) {
	if r.im.Log != nil {
		r.im.Log.Info(msg, args...)
	}
}

func mergeFacts(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func backoff(n int) time.Duration {
	d := 200 * time.Millisecond << (n - 1)
	if d > MaxBackoff {
		d = MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// FindKeyByAttempt returns the id of the KMS key carrying the tag
// kmsbridge:attempt=attempt, or "" when there is none. It reads the tags
// of at most MaxScanKeys keys, newest listing order first as KMS gives it.
func FindKeyByAttempt(ctx context.Context, api API, attempt string) (string, error) {
	var found string
	err := scanKeys(ctx, api, func(id string, tags map[string]string) bool {
		if tags[TagAttempt] == attempt {
			found = id
			return false
		}
		return true
	})
	return found, err
}

// MaxScanKeys bounds the keys a recovery reads the tags of.
const MaxScanKeys = 10000

// scanKeys calls fn with each key's id and tags until fn returns false.
func scanKeys(ctx context.Context, api API, fn func(id string, tags map[string]string) bool) error {
	p := kms.NewListKeysPaginator(api, &kms.ListKeysInput{})
	n := 0
	r := &run{im: &Importer{KMS: api}}
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return explain("ListKeys", err)
		}
		for _, k := range page.Keys {
			if n++; n > MaxScanKeys {
				return fmt.Errorf("%w: more than %d KMS keys in this account and region: kmsbridge reads the tags of at most that many to find its own; find the key with tag %s or %s yourself and give it with --kms-key-id", kmsimport.ErrInvalidInput, MaxScanKeys, TagAttempt, TagHSMKeyID)
			}
			id := aws.ToString(k.KeyId)
			tags, err := r.listTags(ctx, id)
			if err != nil {
				var ke *kmsimport.KMSError
				if errors.As(err, &ke) && ke.Code == "NotFoundException" {
					continue
				}
				return err
			}
			if !fn(id, tags) {
				return nil
			}
		}
	}
	return nil
}
