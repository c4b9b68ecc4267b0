package main

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/kmsbridge/kmsbridge/ceremony"
	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp"
)

// ceremonyClouds opens, once each, the Cloud KMS and Key Vault clients
// and journals a ceremony file's targets need: with the endpoint rules
// of import --cloud gcp|azure, and the journal file import --cloud
// gcp|azure uses for the same token and target on this host.
type ceremonyClouds struct {
	c      *cliContext
	serial string

	mu sync.Mutex
	// holder is the ceremony's AWS journal, which holds the token's lock.
	holder *journal.Journal
	// ownHolder is the holder when it is one of the targets' journals
	// (a ceremony with no AWS part), closed last.
	ownHolder *journal.Journal
	rec       *recorder
	journals  map[string]*journal.Journal
	gcp       map[string]gcp.API
	azure     map[string]azure.API
	closers   []io.Closer
}

var (
	_ ceremony.GCPClients   = (*ceremonyClouds)(nil)
	_ ceremony.AzureClients = (*ceremonyClouds)(nil)
)

func newCeremonyClouds(c *cliContext, tokenSerial string) *ceremonyClouds {
	return &ceremonyClouds{c: c, serial: tokenSerial, journals: map[string]*journal.Journal{}, gcp: map[string]gcp.API{}, azure: map[string]azure.API{}}
}

// record mirrors every journal, those open and those opened later, into
// the ceremony record.
func (cc *ceremonyClouds) record(rec *recorder) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.rec = rec
	for _, j := range cc.journals {
		j.SetMirror(rec.journalEntry)
	}
}

func (cc *ceremonyClouds) journal(target string) (*journal.Journal, error) {
	if j, ok := cc.journals[target]; ok {
		return j, nil
	}
	dir, err := stateDir(cc.c)
	if err != nil {
		return nil, err
	}
	var j *journal.Journal
	if cc.holder == nil {
		// A ceremony with no AWS part: the first target's journal takes
		// the token's lock, and every other opens beside it.
		j, err = journal.Open(cc.c.Context, dir, journal.Scope{TokenSerial: cc.serial, Target: target})
		if err == nil {
			cc.holder, cc.ownHolder = j, j
		}
	} else {
		j, err = journal.OpenBeside(cc.c.Context, dir, journal.Scope{TokenSerial: cc.serial, Target: target}, cc.holder)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v; nothing was changed", kmsimport.ErrInvalidInput, err)
	}
	if cc.rec != nil {
		j.SetMirror(cc.rec.journalEntry)
	}
	cc.journals[target] = j
	return j, nil
}

func (cc *ceremonyClouds) GCP(ctx context.Context, t *ceremony.GCPTarget) (gcp.API, *journal.Journal, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	var allowed []string
	if t.AllowEndpoint != "" {
		allowed = []string{t.AllowEndpoint}
	}
	if err := gcp.CheckEndpoint(t.Endpoint, allowed); err != nil {
		return nil, nil, err
	}
	j, err := cc.journal(gcp.JournalTarget(gcp.Request{Project: t.Project, Location: t.Location}, t.Endpoint))
	if err != nil {
		return nil, nil, err
	}
	if api, ok := cc.gcp[t.Endpoint]; ok {
		return api, j, nil
	}
	api, err := gcp.NewClient(ctx, gcp.ClientOptions{EndpointURL: t.Endpoint, Allowed: allowed})
	if err != nil {
		return nil, nil, err
	}
	cc.gcp[t.Endpoint], cc.closers = api, append(cc.closers, api)
	return api, j, nil
}

func (cc *ceremonyClouds) Azure(_ context.Context, t *ceremony.AzureTarget, vault string) (azure.API, *journal.Journal, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	j, err := cc.journal(azure.JournalTarget(vault))
	if err != nil {
		return nil, nil, err
	}
	if api, ok := cc.azure[vault]; ok {
		return api, j, nil
	}
	var allowed []string
	if t.AllowEndpoint != "" {
		allowed = []string{t.AllowEndpoint}
	}
	api, _, err := azure.NewClientAt(vault, allowed)
	if err != nil {
		return nil, nil, err
	}
	cc.azure[vault] = api
	return api, j, nil
}

// Close closes every client and journal.
func (cc *ceremonyClouds) Close() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for _, c := range cc.closers {
		_ = c.Close()
	}
	for _, j := range cc.journals {
		if j != cc.ownHolder {
			_ = j.Close()
		}
	}
	_ = cc.ownHolder.Close()
}

// hasTargets says whether any key of f has targets.
func hasTargets(f *ceremony.File) bool {
	for _, k := range f.Keys {
		if len(k.Targets) > 0 {
			return true
		}
	}
	return false
}

// writeTargets prints each target of a key with targets.
func writeTargets(w io.Writer, o *ceremony.Outcome) {
	for _, t := range o.Targets {
		state := "done"
		if !t.Done {
			state = "NOT DONE"
		}
		detail := t.Proof
		if t.Error != "" {
			detail = firstLine(t.Error)
		}
		fmt.Fprintf(w, "      %-5s %s %s\n        %s\n", t.Cloud, state, t.Target, detail)
	}
}

// stateDir is --state-dir, or the default state directory.
func stateDir(c *cliContext) (string, error) {
	if dir := c.String(flagStateDir); dir != "" {
		return dir, nil
	}
	d, err := journal.DefaultDir()
	if err != nil {
		return "", usageError{err.Error()}
	}
	return d, nil
}
