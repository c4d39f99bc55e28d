// Command etcdnaming drives the grpc-go naming code of go.etcd.io/etcd/client/v3 exactly as
// its users do, so the xdscp tests can prove interoperability in both directions.
//
//	etcdnaming add     -etcd URL -target T -id ID -addr HOST:PORT [-ttl S] [-metadata JSON]
//	etcdnaming del     -etcd URL -target T -id ID
//	etcdnaming serve   -addr HOST:PORT          (a gRPC health server)
//	etcdnaming resolve -etcd URL -target T -calls N -expect K
//
// With -ttl, add attaches the endpoint to a lease, keeps it alive and prints "ready"; it exits
// (without revoking) when stdin closes, so the lease then expires on its own.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
	"go.etcd.io/etcd/client/v3/naming/resolver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
)

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: etcdnaming add|del|serve|resolve [flags]"))
	}
	flags := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	etcdURL := flags.String("etcd", "http://127.0.0.1:2379", "etcd endpoint")
	target := flags.String("target", "", "naming target")
	id := flags.String("id", "", "endpoint id")
	addr := flags.String("addr", "", "endpoint address host:port")
	ttl := flags.Int64("ttl", 0, "lease TTL in seconds (0: no lease)")
	metadata := flags.String("metadata", "", "endpoint metadata as JSON")
	calls := flags.Int("calls", 20, "calls to make")
	expect := flags.Int("expect", 1, "distinct peers to wait for")
	_ = flags.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "add":
		err = add(*etcdURL, *target, *id, *addr, *ttl, *metadata)
	case "del":
		err = del(*etcdURL, *target, *id)
	case "serve":
		err = serve(*addr)
	case "resolve":
		err = resolve(*etcdURL, *target, *calls, *expect)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}

func client(url string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second})
}

func add(url, target, id, addr string, ttl int64, metadata string) error {
	cli, err := client(url)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx := context.Background()
	manager, err := endpoints.NewManager(cli, target)
	if err != nil {
		return err
	}
	endpoint := endpoints.Endpoint{Addr: addr}
	if metadata != "" {
		var value interface{}
		if err := json.Unmarshal([]byte(metadata), &value); err != nil {
			return err
		}
		endpoint.Metadata = value
	}
	if ttl == 0 {
		return manager.AddEndpoint(ctx, target+"/"+id, endpoint)
	}
	lease, err := cli.Grant(ctx, ttl)
	if err != nil {
		return err
	}
	if err := manager.AddEndpoint(ctx, target+"/"+id, endpoint, clientv3.WithLease(lease.ID)); err != nil {
		return err
	}
	alive, err := cli.KeepAlive(ctx, lease.ID)
	if err != nil {
		return err
	}
	go func() {
		for range alive {
		}
	}()
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

func del(url, target, id string) error {
	cli, err := client(url)
	if err != nil {
		return err
	}
	defer cli.Close()
	manager, err := endpoints.NewManager(cli, target)
	if err != nil {
		return err
	}
	return manager.DeleteEndpoint(context.Background(), target+"/"+id)
}

func serve(addr string) error {
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	server := grpc.NewServer()
	healthpb.RegisterHealthServer(server, health.NewServer())
	fmt.Println("serving", listener.Addr().String())
	return server.Serve(listener)
}

func resolve(url, target string, calls, expect int) error {
	cli, err := client(url)
	if err != nil {
		return err
	}
	defer cli.Close()
	builder, err := resolver.NewBuilder(cli)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient("etcd:///"+target,
		grpc.WithResolvers(builder),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		return err
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(15 * time.Second)
	seen := map[string]bool{}
	for made := 0; made < calls || len(seen) < expect; made++ {
		if time.Now().After(deadline) {
			return fmt.Errorf("saw %d peers, wanted %d", len(seen), expect)
		}
		var from peer.Peer
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := health.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&from), grpc.WaitForReady(true))
		cancel()
		if err != nil {
			continue
		}
		seen[from.Addr.String()] = true
	}
	peers := make([]string, 0, len(seen))
	for p := range seen {
		peers = append(peers, p)
	}
	sort.Strings(peers)
	fmt.Println(strings.Join(peers, " "))
	return nil
}
