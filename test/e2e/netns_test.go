package e2e

import (
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kmsbridge/kmsbridge/softhsm"
)

// netHSM is a stand-in for a network HSM: a SoftHSM2 token behind
// `p11-kit remote`, in a network namespace of its own, reached from the
// host's namespace over TCP across a veth pair. test/netfwd carries the
// RPC: in the token's namespace it runs `p11-kit remote` for each TCP
// connection; on the host p11-kit-client.so runs `netfwd connect` as its
// transport (P11_KIT_SERVER_ADDRESS="|command", p11-kit's exec transport,
// the one pkcs11.conf(5) documents as `remote: |command`).
type netHSM struct {
	tok            *softhsm.Token
	ns, host, peer string // namespace, host-side and namespace-side veth
	addr           string // the token server's TCP address
	netfwd         string
	cmd            *exec.Cmd
}

// startNetHSM makes the namespace and the veth pair and starts the token
// server in it; everything is removed when the test ends, failed or not.
// It skips, saying why, where network namespaces cannot be made.
func startNetHSM(t *testing.T, tok *softhsm.Token) *netHSM {
	t.Helper()
	needFile(t, p11KitClient, "p11-kit-modules")
	if _, err := exec.LookPath("p11-kit"); err != nil {
		needFile(t, "/usr/bin/p11-kit", "p11-kit")
	}
	if os.Geteuid() != 0 {
		t.Skip("the network stand-in for a network HSM needs root (CAP_NET_ADMIN) to make a network namespace and a veth pair; not root here")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the network stand-in needs iproute2's ip(8) (Debian package iproute2); not installed")
	}
	var rnd [2]byte
	_, _ = rand.Read(rnd[:])
	id := fmt.Sprintf("kb%02x%02x", rnd[0], rnd[1])
	n := &netHSM{tok: tok, ns: id + "-hsm", host: id + "h", peer: id + "n"}
	subnet := fmt.Sprintf("10.213.%d", rnd[0]%250)
	n.addr = subnet + ".2:7011"
	if out, err := exec.Command("ip", "netns", "add", n.ns).CombinedOutput(); err != nil {
		t.Skipf("cannot make a network namespace (no CAP_NET_ADMIN in this container?): ip netns add: %v: %s", err, out)
	}
	t.Cleanup(n.remove)
	for _, args := range [][]string{
		{"link", "add", n.host, "type", "veth", "peer", "name", n.peer},
		{"link", "set", n.peer, "netns", n.ns},
		{"addr", "add", subnet + ".1/30", "dev", n.host},
		{"link", "set", n.host, "up"},
		{"-n", n.ns, "addr", "add", subnet + ".2/30", "dev", n.peer},
		{"-n", n.ns, "link", "set", n.peer, "up"},
		{"-n", n.ns, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	n.netfwd = filepath.Join(t.TempDir(), "netfwd")
	build := exec.Command("go", "build", "-o", n.netfwd, "./netfwd")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building test/netfwd: %v\n%s", err, out)
	}
	n.start(t)
	return n
}

// start runs the token server in the namespace and waits until it accepts.
func (n *netHSM) start(t *testing.T) {
	t.Helper()
	n.cmd = exec.Command("ip", "netns", "exec", n.ns, n.netfwd, "listen", n.addr, "p11-kit", "remote", softhsm.DefaultModule)
	n.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "XDG_CONFIG_HOME=" + t.TempDir(), n.tok.Environ()}
	n.cmd.Stdout, n.cmd.Stderr = os.Stderr, os.Stderr
	// A process group of its own: the listener and the `p11-kit remote`
	// serving each connection end together.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := net.DialTimeout("tcp", n.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			n.kill()
			t.Fatalf("the token server in namespace %s does not accept on %s: %v", n.ns, n.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the token server at once, as a crash or a lost host would.
func (n *netHSM) kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	_ = n.cmd.Wait()
	n.cmd = nil
}

// link sets the host side of the veth pair up or down: down, packets are
// dropped with no RST, as when a network path is cut.
func (n *netHSM) link(t *testing.T, state string) {
	t.Helper()
	if out, err := exec.Command("ip", "link", "set", n.host, state).CombinedOutput(); err != nil {
		t.Fatalf("ip link set %s %s: %v: %s", n.host, state, err, out)
	}
}

// remove kills the server and deletes the namespace and the veth pair.
func (n *netHSM) remove() {
	n.kill()
	_ = exec.Command("ip", "netns", "del", n.ns).Run()
	// Deleting the namespace deletes its end of the pair, and with it the
	// host's; delete the host's in case the pair never reached it.
	_ = exec.Command("ip", "link", "del", n.host).Run()
}

// env is the environment under which p11-kit-client.so reaches the token
// over the network.
func (n *netHSM) env() []string {
	return []string{"P11_KIT_SERVER_ADDRESS=|" + n.netfwd + " connect " + n.addr, "KMSBRIDGE_PKCS11_MODULE=" + p11KitClient, "KMSBRIDGE_PIN=" + n.tok.PIN}
}

// TestP11KitRemoteOverNetworkNamespace reaches a SoftHSM2 token in another
// network namespace over TCP, through p11-kit-client.so: doctor and an
// import work; the server killed mid-import and the link cut mid-import
// (no RST: calls hang until --pkcs11-timeout) each end the run with exit 3
// and an honest message, and the same command, once the token is back,
// finishes the job exactly once.
func TestP11KitRemoteOverNetworkNamespace(t *testing.T) {
	tok := newToken(t)
	srv := startNetHSM(t, tok)

	t.Run("doctor and import over the network", func(t *testing.T) {
		rep := doctorJSON(t, srv.env(), tok.Label)
		if row := rowOf(t, rep, "SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSA_2048"); !row.Imports {
			t.Errorf("AES by RSA-OAEP SHA-1 over the network: %+v, want imports", row)
		}
		// Over TCP the token is what it is over the Unix socket (the
		// support matrix's "p11-kit remote" column): the same mechanisms
		// and the same answer for every key spec and wrapping.
		unix := startP11KitServer(t, tok)
		local := doctorJSON(t, unix.env(), tok.Label)
		unix.stop()
		if len(rep.Rows) == 0 || len(rep.Rows) != len(local.Rows) || len(rep.Mechanisms) != len(local.Mechanisms) {
			t.Fatalf("over the network %d rows and %d mechanisms, over the Unix socket %d and %d", len(rep.Rows), len(rep.Mechanisms), len(local.Rows), len(local.Mechanisms))
		}
		for i, row := range rep.Rows {
			if l := local.Rows[i]; row.KeySpec != l.KeySpec || row.WrappingAlgorithm != l.WrappingAlgorithm || row.WrappingKeySpec != l.WrappingKeySpec ||
				row.Imports != l.Imports || row.RefusedBy != l.RefusedBy || row.Reason != l.Reason {
				t.Errorf("over the network %+v, over the Unix socket %+v", row, l)
			}
		}
		emu := startEmulator(t)
		importThrough(t, srv.env(), emu, tok.Label, "over-the-network")
		if n := emu.keyCount(t); n != 1 {
			t.Errorf("%d KMS keys, want 1", n)
		}
	})

	t.Run("server killed mid-import: exit 3, and the re-run finishes exactly once", func(t *testing.T) {
		emu := startEmulator(t, "--latency", "1500ms")
		run := importCutOff(t, emu, tok, srv.env(), "server-killed", srv.kill)
		if !strings.Contains(run.stderr, "stopped answering") && !strings.Contains(run.stderr, "did not return within") {
			t.Errorf("the message does not say the token stopped answering:\n%s", run.stderr)
		}
		srv.start(t)
		run.again(t, emu)
		wantOneHSMKey(t, tok, "server-killed")
	})

	t.Run("link cut mid-import: --pkcs11-timeout bounds the hang, and the re-run finishes exactly once", func(t *testing.T) {
		emu := startEmulator(t, "--latency", "1500ms")
		t.Cleanup(func() { srv.link(t, "up") })
		run := importCutOff(t, emu, tok, srv.env(), "link-cut", func() { srv.link(t, "down") }, "--pkcs11-timeout", "4s")
		if !strings.Contains(run.stderr, "did not return within 4s (--pkcs11-timeout)") || !strings.Contains(run.stderr, "run the same command again") {
			t.Errorf("the message does not say which call hung and what to do:\n%s", run.stderr)
		}
		srv.link(t, "up")
		run.again(t, emu)
		wantOneHSMKey(t, tok, "link-cut")
	})
}
