package kmsemu

import (
	"context"
	"crypto/rsa"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmsbridge/kmsbridge/internal/emukeys"
)

// wrappingKeySizes are the WrappingKeySpec values the pool serves, with how
// many ready key pairs it keeps of each. RSA-4096 generation takes up to a
// few seconds on a small machine; keeping a couple ready keeps
// GetParametersForImport fast without burning CPU on pairs nobody asks for.
var wrappingKeySizes = map[string]struct{ bits, keep int }{
	"RSA_2048": {2048, 3},
	"RSA_3072": {3072, 2},
	"RSA_4096": {4096, 2},
}

// idleGap is how long the emulator must have had no request before a
// sized pool refills: generation then never competes with the requests of
// a run for the machine's CPUs, as real KMS's never does with its
// callers'.
const idleGap = 250 * time.Millisecond

// keyPool hands out fresh RSA wrapping key pairs, one per
// GetParametersForImport call. A spec's background refill starts the first
// time that spec is asked for; when its pool is empty the caller generates
// on demand instead of waiting.
//
// Pools sized by Options.WrappingKeyPool are filled at New by one
// generator per CPU and refilled only while the emulator is idle (no
// request for idleGap). The default, small, pools refill at once, with one
// generator, so that a rehearsal's next import rarely waits.
type keyPool struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// lastRequest is when the emulator last saw a request (UnixNano).
	lastRequest atomic.Int64

	mu     sync.Mutex
	closed bool
	specs  map[string]*specPool
	// sizes are the pools sized by Options.WrappingKeyPool, filled at start.
	sizes map[string]int

	// onDemand counts key pairs generated while a caller waited, for tests
	// that check the pool is used.
	onDemand int
	// refills is false when no key is generated in the background once the
	// sized pools are full (Options.NoPoolRefill).
	refills bool
	// keys makes the pairs: fresh ones, or a test key cache's
	// (Options.TestKeys), in which case unsized specs get no background
	// pool, since a cached pair is ready at once.
	keys *emukeys.Source
}

type specPool struct {
	bits  int
	ready chan *rsa.PrivateKey
	kick  chan struct{} // wakes a refiller after a take
	// whenIdle makes the refillers wait for an idle emulator.
	whenIdle bool

	mu     sync.Mutex
	making int // pairs being generated, each with a place in ready
}

// newKeyPool starts filling, at once, a pool of sizes[spec] key pairs for
// each spec named with a size > 0; other specs get the default size on
// first use.
func newKeyPool(sizes map[string]int, refills bool, keys *emukeys.Source) *keyPool {
	ctx, cancel := context.WithCancel(context.Background())
	p := &keyPool{ctx: ctx, cancel: cancel, specs: map[string]*specPool{}, sizes: map[string]int{}, refills: refills, keys: keys}
	for spec, n := range sizes {
		size, ok := wrappingKeySizes[spec]
		if !ok || n <= 0 {
			continue
		}
		p.sizes[spec] = n
		p.start(spec, size.bits, n, min(n, runtime.GOMAXPROCS(0)), true)
	}
	return p
}

// start makes spec's pool of n and its refillers. Callers hold p.mu or own
// p exclusively.
func (p *keyPool) start(spec string, bits, n, workers int, whenIdle bool) *specPool {
	sp := &specPool{bits: bits, ready: make(chan *rsa.PrivateKey, n), kick: make(chan struct{}, workers), whenIdle: whenIdle}
	p.specs[spec] = sp
	for range workers {
		p.wg.Add(1)
		go p.refill(sp)
	}
	return sp
}

// touch notes a request: sized pools do not refill for idleGap.
func (p *keyPool) touch() { p.lastRequest.Store(time.Now().UnixNano()) }

// waitIdle waits until the emulator has had no request for idleGap; false
// means the pool was closed meanwhile.
func (p *keyPool) waitIdle() bool {
	for {
		busy := idleGap - time.Since(time.Unix(0, p.lastRequest.Load()))
		if busy <= 0 {
			return true
		}
		select {
		case <-time.After(busy):
		case <-p.ctx.Done():
			return false
		}
	}
}

// wait blocks until every pool sized by Options.WrappingKeyPool is full,
// or ctx ends.
func (p *keyPool) wait(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		full := true
		p.mu.Lock()
		for spec := range p.sizes {
			if sp := p.specs[spec]; len(sp.ready) < cap(sp.ready) {
				full = false
			}
		}
		p.mu.Unlock()
		if full {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// ready reports how many key pairs of each spec are ready now.
func (p *keyPool) ready() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for spec, sp := range p.specs {
		out[spec] = len(sp.ready)
	}
	return out
}

// get returns a key pair of the given WrappingKeySpec that was never handed
// out before.
func (p *keyPool) get(spec string) (*rsa.PrivateKey, error) {
	size, ok := wrappingKeySizes[spec]
	if !ok {
		return nil, fmt.Errorf("no RSA size for wrapping key spec %q", spec)
	}
	p.mu.Lock()
	sp := p.specs[spec]
	if sp == nil && !p.closed && p.refills && !p.keys.Cached() {
		sp = p.start(spec, size.bits, size.keep, 1, false)
	}
	p.mu.Unlock()

	if sp != nil {
		select {
		case k := <-sp.ready:
			select {
			case sp.kick <- struct{}{}:
			default:
			}
			return k, nil
		default:
		}
	}
	k, err := p.keys.RSA(size.bits)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.onDemand++
	p.mu.Unlock()
	return k, nil
}

// refill keeps sp.ready full until the pool is closed. The refillers of
// one pool share it: each reserves a place (sp.making) before generating,
// so together they never make more pairs than there is room for.
func (p *keyPool) refill(sp *specPool) {
	defer p.wg.Done()
	for {
		for sp.reserve() {
			if p.ctx.Err() != nil || sp.whenIdle && !p.waitIdle() {
				return
			}
			k, err := p.keys.RSA(sp.bits)
			if err != nil {
				return // get falls back to generating on demand
			}
			sp.ready <- k // the reservation keeps a place free
			sp.mu.Lock()
			sp.making--
			sp.mu.Unlock()
		}
		if !p.refills {
			return // filled once; nothing more in the background
		}
		select {
		case <-sp.kick:
		case <-p.ctx.Done():
			return
		}
	}
}

// reserve takes a place for a pair about to be generated, if there is one.
func (sp *specPool) reserve() bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if len(sp.ready)+sp.making >= cap(sp.ready) {
		return false
	}
	sp.making++
	return true
}

// stats reports how many key pairs callers had to generate on demand.
func (p *keyPool) stats() (onDemand int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.onDemand
}

// close stops the refillers and waits for them, which can take as long as
// one key generation already under way.
func (p *keyPool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
}

// ParseWrappingKeyPool reads --wrapping-key-pool values: "N" sizes the pool
// of every WrappingKeySpec, "SPEC=N" (RSA_2048, RSA_3072 or RSA_4096) one
// spec; later values override earlier ones. N is 1 to 10000.
func ParseWrappingKeyPool(values []string) (map[string]int, error) {
	out := map[string]int{}
	for _, v := range values {
		spec, n, named := strings.Cut(v, "=")
		if !named {
			n, spec = spec, ""
		}
		size, err := strconv.Atoi(n)
		if err != nil || size < 1 || size > 10000 {
			return nil, fmt.Errorf("wrapping key pool %q: the size must be a whole number from 1 to 10000", v)
		}
		if !named {
			for s := range wrappingKeySizes {
				out[s] = size
			}
			continue
		}
		if _, ok := wrappingKeySizes[spec]; !ok {
			return nil, fmt.Errorf("wrapping key pool %q: %q is not RSA_2048, RSA_3072 or RSA_4096", v, spec)
		}
		out[spec] = size
	}
	return out, nil
}
