// Command xdsclient is a grpc-go application that balances with xDS (target xds:///SERVICE),
// as xdscp's users' grpc-go clients do. The blank import of google.golang.org/grpc/xds
// registers the xds resolver and balancers; the bootstrap comes from GRPC_XDS_BOOTSTRAP or
// GRPC_XDS_BOOTSTRAP_CONFIG, read once per process.
//
// It speaks the same stdin/stdout protocol as the tests' grpcio client
// (tests/harness/grpc_client.py): after dialing it makes one call and prints
// {"ready": bool, "error": str}; then each JSON command line on stdin
//
//	{"n": 100, "concurrency": 4}              n calls, `concurrency` in flight at a time
//	{"header": "x-user", "keys": ["a", "b"]}  one call per key, the key sent in `header`
//	{"target": "xds:///api", "timeout": 20}   the calls on another target's channel (dialed on
//	                                          first use), each given `timeout` seconds (default 5)
//
// is answered with one line {"counts": {...}, "picks": [...], "errors": [...]}: which backend
// answered each call of /xdscp.demo.Echo/Who (a google.protobuf.StringValue with its name).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"

	_ "google.golang.org/grpc/xds" // registers the xds:/// resolver and balancers
)

const (
	who         = "/xdscp.demo.Echo/Who"
	firstCall   = 20 * time.Second
	callTimeout = 5 * time.Second
)

type command struct {
	N           int      `json:"n"`
	Concurrency int      `json:"concurrency"`
	Header      string   `json:"header"`
	Keys        []string `json:"keys"`
	Target      string   `json:"target"`
	Timeout     float64  `json:"timeout"`
}

type result struct {
	Counts map[string]int `json:"counts"`
	Picks  []string       `json:"picks"`
	Errors []string       `json:"errors"`
}

// call makes one RPC; it returns the backend's name or the error text.
func call(conn *grpc.ClientConn, header, key string, timeout time.Duration) (string, string) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if header != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, header, key)
	}
	reply := &wrapperspb.StringValue{}
	err := conn.Invoke(ctx, who, &wrapperspb.StringValue{}, reply, grpc.WaitForReady(true))
	if err != nil {
		return "", err.Error()
	}
	return reply.Value, ""
}

// run makes the calls of one command; picks are in call order (the keys' order).
func run(conn *grpc.ClientConn, cmd command) result {
	calls := cmd.N
	if cmd.Keys != nil {
		calls = len(cmd.Keys)
	}
	workers := max(cmd.Concurrency, 1)
	timeout := callTimeout
	if cmd.Timeout > 0 {
		timeout = time.Duration(cmd.Timeout * float64(time.Second))
	}
	picks, errs := make([]string, calls), make([]string, calls)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				key := ""
				if cmd.Keys != nil {
					key = cmd.Keys[i]
				}
				picks[i], errs[i] = call(conn, cmd.Header, key, timeout)
			}
		}()
	}
	for i := range calls {
		next <- i
	}
	close(next)
	wg.Wait()
	out := result{Counts: map[string]int{}, Picks: picks, Errors: []string{}}
	for i := range calls {
		if errs[i] != "" {
			out.Errors = append(out.Errors, errs[i])
		} else {
			out.Counts[picks[i]]++
		}
	}
	return out
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: xdsclient xds:///SERVICE  (commands on stdin)")
		os.Exit(2)
	}
	conns := map[string]*grpc.ClientConn{}
	dial := func(target string) *grpc.ClientConn {
		if conn, ok := conns[target]; ok {
			return conn
		}
		conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			fmt.Fprintln(os.Stderr, "dial:", err)
			os.Exit(1)
		}
		conns[target] = conn
		return conn
	}
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	conn := dial(os.Args[1])
	out := json.NewEncoder(os.Stdout)
	_, firstErr := call(conn, "", "", firstCall) // the xDS resources arrive meanwhile
	if err := out.Encode(map[string]any{"ready": firstErr == "", "error": firstErr}); err != nil {
		os.Exit(1)
	}
	lines := bufio.NewScanner(os.Stdin)
	lines.Buffer(make([]byte, 1<<20), 1<<24)
	for lines.Scan() {
		if len(lines.Bytes()) == 0 {
			continue
		}
		var cmd command
		if err := json.Unmarshal(lines.Bytes(), &cmd); err != nil {
			fmt.Fprintln(os.Stderr, "bad command:", err)
			os.Exit(2)
		}
		target := conn
		if cmd.Target != "" {
			target = dial(cmd.Target)
		}
		if err := out.Encode(run(target, cmd)); err != nil {
			os.Exit(1)
		}
	}
}
