package kmsemu

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"sync"
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

// keyPool hands out fresh RSA wrapping key pairs, one per
// GetParametersForImport call. A spec's background refill starts the first
// time that spec is asked for; when its pool is empty the caller generates
// on demand instead of waiting.
type keyPool struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	specs  map[string]*specPool

	// onDemand counts key pairs generated while a caller waited, for tests
	// that check the pool is used.
	onDemand int
}

type specPool struct {
	bits  int
	ready chan *rsa.PrivateKey
	kick  chan struct{} // wakes the refiller after a take
}

func newKeyPool() *keyPool {
	ctx, cancel := context.WithCancel(context.Background())
	return &keyPool{ctx: ctx, cancel: cancel, specs: map[string]*specPool{}}
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
	if sp == nil && !p.closed {
		sp = &specPool{bits: size.bits, ready: make(chan *rsa.PrivateKey, size.keep), kick: make(chan struct{}, 1)}
		p.specs[spec] = sp
		p.wg.Add(1)
		go p.refill(sp)
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
	k, err := rsa.GenerateKey(rand.Reader, size.bits)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.onDemand++
	p.mu.Unlock()
	return k, nil
}

// refill keeps sp.ready full until the pool is closed.
func (p *keyPool) refill(sp *specPool) {
	defer p.wg.Done()
	for {
		for len(sp.ready) < cap(sp.ready) {
			if p.ctx.Err() != nil {
				return
			}
			k, err := rsa.GenerateKey(rand.Reader, sp.bits)
			if err != nil {
				return // get falls back to generating on demand
			}
			select {
			case sp.ready <- k:
			case <-p.ctx.Done():
				return
			}
		}
		select {
		case <-sp.kick:
		case <-p.ctx.Done():
			return
		}
	}
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
