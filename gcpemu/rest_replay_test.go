package gcpemu_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kmsbridge/kmsbridge/gcpemu"
)

// exchange is one request and its recorded answer from a Config Connector
// _http.log file.
type exchange struct {
	method, url, reqBody string
	status               int
	contentType, body    string
}

var statusLine = regexp.MustCompile(`^([0-9]{3}) `)

// parseHTTPLog reads the recording format: exchanges separated by "---",
// each the request line, headers, optional body, then the status line,
// headers and body.
func parseHTTPLog(t *testing.T, text string) []exchange {
	t.Helper()
	var out []exchange
	for _, part := range strings.Split(text, "\n---\n") {
		lines := strings.Split(strings.Trim(part, "\n"), "\n")
		if len(lines) < 2 {
			continue
		}
		method, url, ok := strings.Cut(lines[0], " ")
		if !ok {
			t.Fatalf("request line %q", lines[0])
		}
		e := exchange{method: method, url: url}
		i := 1
		for i < len(lines) && lines[i] != "" && !statusLine.MatchString(lines[i]) {
			i++ // request headers
		}
		var req []string
		for i < len(lines) && !statusLine.MatchString(lines[i]) {
			req = append(req, lines[i])
			i++
		}
		e.reqBody = strings.TrimSpace(strings.Join(req, "\n"))
		if i == len(lines) {
			t.Fatalf("no status line in exchange %q", lines[0])
		}
		e.status, _ = strconv.Atoi(lines[i][:3])
		for i++; i < len(lines) && lines[i] != ""; i++ {
			if v, ok := strings.CutPrefix(lines[i], "Content-Type: "); ok {
				e.contentType = v
			}
		}
		e.body = strings.TrimSpace(strings.Join(lines[i:], "\n"))
		out = append(out, e)
	}
	return out
}

// exactFields are compared by value; every other field by presence and
// JSON type only (times, keys, certificates and attestations differ by
// nature between a real HSM and the emulator).
var exactFields = map[string]bool{"name": true, "state": true, "importMethod": true, "protectionLevel": true,
	"format": true, "code": true, "status": true, "message": true, "totalSize": true}

func sameShape(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: recorded an object, emulator %T", path, got)}
		}
		var diffs []string
		keys := map[string]bool{}
		for k := range w {
			keys[k] = true
		}
		for k := range g {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			wv, inW := w[k]
			gv, inG := g[k]
			switch {
			case !inG:
				diffs = append(diffs, fmt.Sprintf("%s.%s: recorded, missing from the emulator's answer", path, k))
			case !inW:
				diffs = append(diffs, fmt.Sprintf("%s.%s: in the emulator's answer, not recorded", path, k))
			case exactFields[k]:
				if fmt.Sprint(wv) != fmt.Sprint(gv) {
					diffs = append(diffs, fmt.Sprintf("%s.%s: recorded %v, emulator %v", path, k, wv, gv))
				}
			default:
				diffs = append(diffs, sameShape(path+"."+k, wv, gv)...)
			}
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) == 0 || len(w) == 0 {
			if !ok || (len(g) == 0) != (len(w) == 0) {
				return []string{fmt.Sprintf("%s: recorded %d items, emulator %v", path, len(w), got)}
			}
			return nil
		}
		return sameShape(path+"[0]", w[0], g[0])
	default:
		if fmt.Sprintf("%T", want) != fmt.Sprintf("%T", got) {
			return []string{fmt.Sprintf("%s: recorded %T, emulator %T", path, want, got)}
		}
	}
	return nil
}

// TestRESTReplaysRecordedTraffic sends every recorded request of real
// Cloud KMS REST traffic to the emulator, in order, and compares each
// answer with the recorded one: status code, Content-Type, the set of
// fields at every level, the values of names, states, enums and errors.
func TestRESTReplaysRecordedTraffic(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"kcc_mockkms_importjob_crud_http.39a2d854.log", "kcc_basickmsimportjob_http.log"} {
		t.Run(file, func(t *testing.T) {
			srv, c := startREST(t, gcpemu.Options{Now: time.Now})
			raw, err := os.ReadFile(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			subst := strings.NewReplacer("${projectId}", "test-project", "${uniqueId}", "u1234",
				"https://cloudkms.googleapis.com", c.base)
			exchanges := parseHTTPLog(t, subst.Replace(string(raw)))
			if len(exchanges) < 3 {
				t.Fatalf("%d exchanges parsed", len(exchanges))
			}
			// The crud log starts from a key ring made before the
			// recording; it is made here.
			if file == "kcc_mockkms_importjob_crud_http.39a2d854.log" {
				c.ok("POST", "/v1/projects/test-project/locations/us-central1/keyRings?keyRingId=test-keyring-u1234", "")
			}
			for i, e := range exchanges {
				srv.WaitGenerated(time.Minute) // the recorded GET after a create saw the job ACTIVE
				req, err := http.NewRequest(e.method, e.url, strings.NewReader(e.reqBody))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != e.status || resp.Header.Get("Content-Type") != e.contentType {
					t.Errorf("exchange %d %s %s: %d %q, recorded %d %q\n%s", i+1, e.method, e.url, resp.StatusCode, resp.Header.Get("Content-Type"), e.status, e.contentType, body)
					continue
				}
				var want, got any
				if err := json.Unmarshal([]byte(e.body), &want); err != nil {
					t.Fatalf("exchange %d: recorded body: %v", i+1, err)
				}
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatalf("exchange %d: emulator body: %v", i+1, err)
				}
				for _, d := range sameShape("", want, got) {
					t.Errorf("exchange %d %s %s: %s", i+1, e.method, e.url, d)
				}
			}
		})
	}
}
