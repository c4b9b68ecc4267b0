// Command netfwd is plumbing for the network stand-in of a network HSM in
// the end-to-end tests: it carries p11-kit's RPC over TCP between two
// network namespaces. It is not a fake: the token is SoftHSM2 behind
// `p11-kit remote`, and the client is p11-kit-client.so.
//
//	netfwd listen ADDR COMMAND [ARG...]
//	    accepts TCP connections on ADDR and runs COMMAND for each one, with
//	    its standard input and output on the connection (as inetd would):
//	    `netfwd listen 10.0.0.2:7000 p11-kit remote /usr/lib/softhsm/libsofthsm2.so`
//	netfwd connect ADDR
//	    connects to ADDR and copies standard input to the connection and the
//	    connection to standard output, for p11-kit-client.so's
//	    P11_KIT_SERVER_ADDRESS="|netfwd connect 10.0.0.2:7000".
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: netfwd listen ADDR COMMAND [ARG...] | netfwd connect ADDR")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "listen":
		if len(os.Args) < 4 {
			err = fmt.Errorf("listen: no command to run for each connection")
			break
		}
		err = listen(os.Args[2], os.Args[3:])
	case "connect":
		err = connect(os.Args[2])
	default:
		err = fmt.Errorf("unknown mode %q: listen or connect", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "netfwd:", err)
		os.Exit(1)
	}
}

func listen(addr string, command []string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "netfwd: listening on", l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go serve(c.(*net.TCPConn), command)
	}
}

// serve runs command with its standard input and output on c.
func serve(c *net.TCPConn, command []string) {
	defer c.Close()
	f, err := c.File()
	if err != nil {
		fmt.Fprintln(os.Stderr, "netfwd:", err)
		return
	}
	defer f.Close()
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "netfwd: the command for", c.RemoteAddr(), "ended:", err)
	}
}

func connect(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	done := make(chan error, 2)
	go func() { _, err := io.Copy(c, os.Stdin); done <- err }()
	go func() { _, err := io.Copy(os.Stdout, c); done <- err }()
	return <-done
}
