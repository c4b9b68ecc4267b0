package aws

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	tagging "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	tagtypes "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi/types"

	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/ownership"
)

// journalOf is a journal in a fresh directory that shows kmsbridge
// creating every key of l (CreateKey intent and outcome, with the key's
// link); done closes and removes it.
func journalOf(l *ledger) (*journal.Journal, func()) {
	dir, err := os.MkdirTemp("", "kmsimport-journal-")
	if err != nil {
		panic(err)
	}
	j, err := journal.Open(context.Background(), dir, journal.Scope{TokenSerial: "0001", Target: "eu-west-1@test"})
	if err != nil {
		panic(err)
	}
	for id, k := range l.keys {
		p, err := j.Intend(journal.Intent{Command: "import", Op: "CreateKey", Target: map[string]string{"HsmKeyId": k.tags[TagHSMKeyID], "TokenSerial": "0001"}})
		if err != nil {
			panic(err)
		}
		if err := p.Done(journal.ResultOK, map[string]string{"KmsKeyId": id}, nil); err != nil {
			panic(err)
		}
	}
	return j, func() { j.Close(); os.RemoveAll(dir) }
}

// createdJournal is a journal that shows kmsbridge creating each KMS key
// of created (key id to the HSM key's CKA_ID hex) on token 0001.
func createdJournal(t *testing.T, created map[string]string) *journal.Journal {
	t.Helper()
	j, err := journal.Open(context.Background(), t.TempDir(), journal.Scope{TokenSerial: "0001", Target: "t"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	for id, hsmID := range created {
		p, err := j.Intend(journal.Intent{Command: "import", Op: "CreateKey", Target: map[string]string{"HsmKeyId": hsmID, "TokenSerial": "0001"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Done(journal.ResultOK, map[string]string{"KmsKeyId": id}, nil); err != nil {
			t.Fatal(err)
		}
	}
	return j
}

// tagIndex is a Resource Groups Tagging API over tags (key id to tags);
// it counts its calls.
type tagIndex struct {
	tags  map[string]map[string]string
	calls int
}

func fakeTagging(tags map[string]map[string]string) *tagIndex { return &tagIndex{tags: tags} }

func (x *tagIndex) GetResources(_ context.Context, in *tagging.GetResourcesInput, _ ...func(*tagging.Options)) (*tagging.GetResourcesOutput, error) {
	x.calls++
	out := &tagging.GetResourcesOutput{}
	ids := make([]string, 0, len(x.tags))
	for id := range x.tags {
		ids = append(ids, id)
	}
	sort.Strings(ids)
next:
	for _, id := range ids {
		for _, f := range in.TagFilters {
			if !slices.Contains(f.Values, x.tags[id][aws.ToString(f.Key)]) {
				continue next
			}
		}
		out.ResourceTagMappingList = append(out.ResourceTagMappingList, tagtypes.ResourceTagMapping{ResourceARN: aws.String("arn:aws:kms:eu-west-1:111122223333:key/" + id)})
	}
	return out, nil
}

func TestImportRefusesALinkedKMSKeyItDidNotMake(t *testing.T) {
	tags := map[string]map[string]string{"planted": linkToAB}
	api := linkedKMS([]string{"planted"}, tags)
	j := createdJournal(t, nil)
	_, err := (&Importer{KMS: api, Token: &fakeToken{labels: map[string]bool{"k": true}, sha256: true}, Journal: j, Tagging: fakeTagging(tags)}).Run(context.Background(), existingKeyRequest())
	if !errors.Is(err, ownership.ErrNotOurs) || !strings.Contains(err.Error(), "KMS key planted") || !strings.Contains(err.Error(), "--adopt") {
		t.Fatalf("got %v, want a refusal naming the planted key and --adopt", err)
	}
	for _, c := range api.calls {
		if c == "CreateKey" || c == "TagResource" || c == "ListKeys" {
			t.Errorf("called %s", c)
		}
	}
}

func TestImportAdoptsALinkedKMSKeyOnlyWithAdoptAndRecordsIt(t *testing.T) {
	tags := map[string]map[string]string{"planted": linkToAB}
	api := linkedKMS([]string{"planted"}, tags)
	j := createdJournal(t, nil)
	owner := &ownership.Authority{TokenSerial: "0001", Journal: j, Adopt: true}
	res, _ := (&Importer{KMS: api, Token: &fakeToken{labels: map[string]bool{"k": true}, sha256: true}, Journal: j, Owner: owner, Tagging: fakeTagging(tags)}).Run(context.Background(), existingKeyRequest())
	if res.KeyId != "planted" {
		t.Fatalf("key %q, want planted adopted", res.KeyId)
	}
	noted := false
	for _, e := range j.Entries() {
		noted = noted || e.Op == ownership.NoteAdopt && e.Facts["KmsKeyId"] == "planted"
	}
	if !noted {
		t.Error("the adoption is not in the journal")
	}
}

// TestLinkedKMSKeysCostIsWhatItFinds: finding the KMS keys linked to an
// HSM key reads no list of the account's keys and the tags of no key but
// those it finds, however many keys the account holds.
func TestLinkedKMSKeysCostIsWhatItFinds(t *testing.T) {
	tags := map[string]map[string]string{"mine": linkToAB}
	ids := []string{"mine"}
	for i := 0; i < 2000; i++ {
		id := fmt.Sprintf("noise-%d", i)
		ids = append(ids, id)
		tags[id] = map[string]string{TagHSMKeyID: fmt.Sprintf("%x", i+0x1000), TagTokenSerial: "0001"}
	}
	api := linkedKMS(ids, tags)
	ti := fakeTagging(tags)
	j := createdJournal(t, map[string]string{"mine": "ab"})
	r := &run{im: &Importer{KMS: api, Journal: j, Tagging: ti}, res: &Result{}}
	r.res.HSM.Token.Serial = "0001"
	l, err := r.owner().LinkedKMSKeys(context.Background(), r.view(), "ab")
	if err != nil || !slices.Equal(l.Ours, []string{"mine"}) || len(l.Foreign) != 0 {
		t.Fatalf("links %+v, err %v", l, err)
	}
	n := map[string]int{}
	for _, c := range api.calls {
		n[c]++
	}
	if n["ListKeys"] != 0 || n["ListResourceTags"] > 1 || n["DescribeKey"] > 1 || ti.calls != 1 {
		t.Errorf("calls %v and %d tag searches for one linked key among %d: want at most one of each", n, ti.calls, len(ids))
	}
}
