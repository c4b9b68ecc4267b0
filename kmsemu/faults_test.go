package kmsemu

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
)

type listFaultsResult struct {
	Pending []pendingFault
	Fired   []struct {
		FaultId    int
		Operation  string
		Fault      string
		Call       int
		TookEffect bool
		Outcome    string
	}
	Calls       map[string]int
	RegionCalls map[string]map[string]int
}

func (e *env) injectFault(t *testing.T, in map[string]any) int {
	t.Helper()
	var out struct{ FaultId int }
	e.rawOK(t, "KmsBridgeInjectFault", in, &out)
	if out.FaultId <= 0 {
		t.Fatalf("KmsBridgeInjectFault: FaultId = %d", out.FaultId)
	}
	return out.FaultId
}

func (e *env) listFaults(t *testing.T) listFaultsResult {
	t.Helper()
	var out listFaultsResult
	e.rawOK(t, "KmsBridgeListFaults", map[string]any{}, &out)
	return out
}

func (e *env) keyCount(t *testing.T) int {
	t.Helper()
	out, err := e.kms.ListKeys(ctx, &kms.ListKeysInput{})
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	return len(out.Keys)
}

func (e *env) tryCreateKey(ctx context.Context) error {
	_, err := e.kms.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal})
	return err
}

// httpStatus is the HTTP status of an SDK error, or 0 if it had no response.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func TestInjectFaultKinds(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name       string
		fault      string
		wantCode   string // "" for a transport error without a response
		wantStatus int
		tookEffect bool
	}{
		{"ok InternalError answers 500 and changes nothing", "InternalError", "KMSInternalException", 500, false},
		{"ok Throttling answers ThrottlingException and changes nothing", "Throttling", "ThrottlingException", 400, false},
		{"ok Reset closes the connection and changes nothing", "Reset", "", 0, false},
		{"ok LostResponse changes, then closes the connection", "LostResponse", "", 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			id := e.injectFault(t, map[string]any{"Operation": "CreateKey", "Fault": tt.fault})
			err := e.tryCreateKey(ctx)
			if err == nil {
				t.Fatal("CreateKey succeeded under an injected fault")
			}
			var ae smithy.APIError
			if tt.wantCode == "" {
				if errors.As(err, &ae) || httpStatus(err) != 0 {
					t.Fatalf("CreateKey error %v has a response; want the connection closed without one", err)
				}
			} else {
				wantErr(t, err, tt.wantCode, "injected fault")
				if got := httpStatus(err); got != tt.wantStatus {
					t.Errorf("HTTP status %d, want %d", got, tt.wantStatus)
				}
			}
			wantKeys := 0
			if tt.tookEffect {
				wantKeys = 1
			}
			if n := e.keyCount(t); n != wantKeys {
				t.Errorf("%d keys after the fault, want %d", n, wantKeys)
			}
			l := e.listFaults(t)
			if len(l.Pending) != 0 || len(l.Fired) != 1 {
				t.Fatalf("after one fault: pending %+v, fired %+v", l.Pending, l.Fired)
			}
			f := l.Fired[0]
			if f.FaultId != id || f.Operation != "CreateKey" || f.Fault != tt.fault || f.Call != 1 || f.TookEffect != tt.tookEffect {
				t.Errorf("fired %+v, want fault %d on call 1 of CreateKey, TookEffect %v", f, id, tt.tookEffect)
			}
			if err := e.tryCreateKey(ctx); err != nil {
				t.Errorf("the call after the fault: %v", err)
			}
		})
	}
}

func TestInjectFaultHang(t *testing.T) {
	t.Parallel()
	t.Run("ok the call goes through after the hang", func(t *testing.T) {
		e := newEnv(t, Options{})
		e.injectFault(t, map[string]any{"Operation": "CreateKey", "Fault": "Hang", "HangMillis": 20})
		if err := e.tryCreateKey(ctx); err != nil {
			t.Fatalf("CreateKey after a hang: %v", err)
		}
		l := e.listFaults(t)
		if len(l.Fired) != 1 || !l.Fired[0].TookEffect || l.Fired[0].Fault != "Hang" {
			t.Errorf("fired %+v, want one Hang that took effect", l.Fired)
		}
		if n := e.keyCount(t); n != 1 {
			t.Errorf("%d keys, want 1", n)
		}
	})
	t.Run("ok a client that gives up leaves nothing done", func(t *testing.T) {
		e := newEnv(t, Options{})
		e.injectFault(t, map[string]any{"Operation": "CreateKey", "Fault": "Hang", "HangMillis": 600000})
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := e.tryCreateKey(cctx)
		cancel()
		if err == nil {
			t.Fatal("CreateKey returned before the hang ended")
		}
		// Wait for the server to notice the client left (no timing asserted).
		var l listFaultsResult
		for range 500 {
			if l = e.listFaults(t); len(l.Fired) == 1 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if len(l.Fired) != 1 || l.Fired[0].TookEffect || l.Fired[0].Outcome != "client went away" {
			t.Fatalf("fired %+v, want one Hang that did not take effect", l.Fired)
		}
		if n := e.keyCount(t); n != 0 {
			t.Errorf("%d keys, want 0", n)
		}
	})
}

func TestInjectFaultOccurrenceAndCount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	e.injectFault(t, map[string]any{"Operation": "CreateKey", "Fault": "Throttling", "Occurrence": 2, "Count": 2})
	if l := e.listFaults(t); len(l.Pending) != 1 || l.Pending[0].Occurrence != 2 || l.Pending[0].Count != 2 {
		t.Fatalf("pending %+v, want occurrence 2 count 2", l.Pending)
	}
	// Other operations do not count.
	e.keyCount(t)
	var got []string
	for range 4 {
		got = append(got, code(e.tryCreateKey(ctx)))
	}
	want := []string{"", "ThrottlingException", "ThrottlingException", ""}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("calls 1-4 of CreateKey answered %q, want %q", got, want)
		}
	}
	l := e.listFaults(t)
	if len(l.Pending) != 0 || len(l.Fired) != 2 || l.Fired[0].Call != 2 || l.Fired[1].Call != 3 {
		t.Errorf("pending %+v fired %+v, want calls 2 and 3 fired", l.Pending, l.Fired)
	}
	if l.Calls["CreateKey"] != 4 || l.Calls["ListKeys"] != 1 {
		t.Errorf("Calls = %v", l.Calls)
	}
}

// A fault with a Region counts and hits only calls in that Region, so
// tests sharing one emulator do not take each other's faults.
func TestInjectFaultRegion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	other := regionClient(e.url, "eu-west-1")
	e.injectFault(t, map[string]any{"Operation": "CreateKey", "Fault": "Throttling", "Occurrence": 2, "Region": "eu-west-1"})
	for i := range 3 {
		if err := e.tryCreateKey(ctx); err != nil {
			t.Fatalf("CreateKey %d in us-east-1: %v, want no fault (the fault is eu-west-1's)", i+1, err)
		}
	}
	if _, err := other.CreateKey(ctx, &kms.CreateKeyInput{}); err != nil {
		t.Fatalf("first CreateKey in eu-west-1: %v, want no fault", err)
	}
	if _, err := other.CreateKey(ctx, &kms.CreateKeyInput{}); code(err) != "ThrottlingException" {
		t.Fatalf("second CreateKey in eu-west-1: %v, want the injected ThrottlingException", err)
	}
	l := e.listFaults(t)
	if l.RegionCalls["eu-west-1"]["CreateKey"] != 2 || l.RegionCalls["us-east-1"]["CreateKey"] != 3 || l.Calls["CreateKey"] != 5 {
		t.Errorf("Calls %v RegionCalls %v, want 2 in eu-west-1, 3 in us-east-1", l.Calls, l.RegionCalls)
	}
	if status, _, _ := e.raw(t, "TrentService.KmsBridgeInjectFault", []byte(`{"Operation":"CreateKey","Fault":"Reset","Region":"Mars"}`)); status != 400 {
		t.Errorf("a Region that is no Region name: HTTP %d, want 400 ValidationException", status)
	}
}

func TestClearFaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	e.injectFault(t, map[string]any{"Operation": "DescribeKey", "Fault": "InternalError"})
	e.injectFault(t, map[string]any{"Operation": "CreateKey", "Fault": "Throttling"})
	if err := e.tryCreateKey(ctx); code(err) != "ThrottlingException" {
		t.Fatalf("CreateKey: %v", err)
	}
	var out struct{ Cleared int }
	e.rawOK(t, "KmsBridgeClearFaults", map[string]any{}, &out)
	if out.Cleared != 1 {
		t.Errorf("Cleared = %d, want 1", out.Cleared)
	}
	if l := e.listFaults(t); len(l.Pending) != 0 || len(l.Fired) != 0 {
		t.Errorf("after clearing: pending %+v fired %+v", l.Pending, l.Fired)
	}
	id := aws.ToString(e.createKey(t, types.OriginTypeAwsKms).KeyId)
	e.describe(t, id)
}

func TestInjectFaultBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	for _, tt := range []struct{ name, body, code, msg string }{
		{"fail unknown operation", `{"Operation":"MakeCoffee","Fault":"Reset"}`, "ValidationException", "operation"},
		{"fail emulator-only operation", `{"Operation":"KmsBridgeListFaults","Fault":"Reset"}`, "ValidationException", "operation"},
		{"fail unknown fault", `{"Operation":"CreateKey","Fault":"Explode"}`, "ValidationException", "fault"},
		{"fail missing fault", `{"Operation":"CreateKey"}`, "ValidationException", "fault"},
		{"fail Hang without HangMillis", `{"Operation":"CreateKey","Fault":"Hang"}`, "ValidationException", "hangMillis"},
		{"fail HangMillis on another fault", `{"Operation":"CreateKey","Fault":"Reset","HangMillis":5}`, "ValidationException", "hangMillis"},
		{"fail occurrence 0", `{"Operation":"CreateKey","Fault":"Reset","Occurrence":0}`, "ValidationException", "occurrence"},
		{"fail count 0", `{"Operation":"CreateKey","Fault":"Reset","Count":0}`, "ValidationException", "count"},
		{"fail occurrence as a string", `{"Operation":"CreateKey","Fault":"Reset","Occurrence":"1"}`, "SerializationException", "Occurrence"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, errType, body := e.raw(t, "TrentService.KmsBridgeInjectFault", []byte(tt.body))
			if status != http.StatusBadRequest || errType != tt.code || !contains(string(body), tt.msg) {
				t.Errorf("HTTP %d %s %s, want 400 %s mentioning %s", status, errType, body, tt.code, tt.msg)
			}
		})
	}
	if l := e.listFaults(t); len(l.Pending) != 0 {
		t.Errorf("a refused fault is pending: %+v", l.Pending)
	}
}

func TestTestOperationsOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	e.srv.testOps = false // as New leaves it without Options.TestOperations
	for _, op := range []string{"KmsBridgeGetKeyCheckValue", "KmsBridgeAdvanceClock", "KmsBridgeInjectFault", "KmsBridgeListFaults", "KmsBridgeClearFaults"} {
		t.Run("fail "+op, func(t *testing.T) {
			status, errType, body := e.raw(t, "TrentService."+op, []byte(`{}`))
			if status != http.StatusBadRequest || errType != "UnknownOperationException" || !contains(string(body), "--test-operations") {
				t.Errorf("HTTP %d %s %s, want 400 UnknownOperationException naming --test-operations", status, errType, body)
			}
		})
	}
	if New(Options{}).testOps {
		t.Error("test operations are on by default")
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
