// Command interopclient is an xDS interop test client: the program grpc/grpc's
// doc/xds-test-descriptions.md calls "the test client", written on grpc-go's public API and
// its generated grpc.testing stubs (google.golang.org/grpc/interop/grpc_testing).
//
// It sends RPCs to --server (xds:///TARGET: the bootstrap comes from GRPC_XDS_BOOTSTRAP or
// GRPC_XDS_BOOTSTRAP_CONFIG) at --qps per second of each --rpc type, spread over
// --num_channels channels, and serves on --stats_port:
//
//   - grpc.testing.LoadBalancerStatsService: GetClientStats (which server answered each of
//     the next num_rpcs RPCs, by peer and by method; the RPCs not answered within
//     timeout_sec count as failures) and GetClientAccumulatedStats (every RPC since start);
//   - grpc.testing.XdsUpdateClientConfigureService: Configure (the RPC types, their
//     metadata and timeout, replacing the flags' configuration);
//   - the admin services (google.golang.org/grpc/admin: CSDS, channelz) and reflection.
//
// The server that answered is the "hostname" response header, or SimpleResponse.hostname.
// Not implemented (not needed by the scenarios run here): metadata_keys in GetClientStats,
// --secure_mode, payload sizes, rpc-behavior.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/admin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	_ "google.golang.org/grpc/xds" // the xds:/// resolver and balancers; CSDS in admin
)

var (
	server         = flag.String("server", "localhost:8080", "the target, e.g. xds:///TARGET")
	numChannels    = flag.Int("num_channels", 1, "channels the RPCs are spread over")
	qps            = flag.Int("qps", 1, "RPCs sent per second, of each type")
	rpcFlag        = flag.String("rpc", "UnaryCall", "RPC types to send, comma-separated: UnaryCall, EmptyCall")
	metadataFlag   = flag.String("metadata", "", "metadata sent, comma-separated TYPE:KEY:VALUE (TYPE: UnaryCall or EmptyCall)")
	statsPort      = flag.Int("stats_port", 8081, "port of the stats, configure and admin services")
	rpcTimeoutSec  = flag.Int("rpc_timeout_sec", 20, "deadline of each RPC, in seconds")
	failOnFailed   = flag.Bool("fail_on_failed_rpc", false, "exit when an RPC fails after one has succeeded")
	printResponses = flag.Bool("print_response", false, "log every RPC's answering server")
)

const (
	unaryCall = "UnaryCall"
	emptyCall = "EmptyCall"
)

// accumulatedName is the method name GetClientAccumulatedStats uses for an RPC type.
var accumulatedName = map[string]string{unaryCall: "UNARY_CALL", emptyCall: "EMPTY_CALL"}

// rpcConfig is one RPC type to send, with its metadata and deadline.
type rpcConfig struct {
	typ     string
	md      metadata.MD
	timeout time.Duration
}

// statsWatcher collects the outcome of the RPCs numbered [start, end).
type statsWatcher struct {
	start, end int64
	mu         sync.Mutex
	byPeer     map[string]int32
	byMethod   map[string]map[string]int32
	failures   int32
	remaining  int32
	done       chan struct{}
}

func (w *statsWatcher) record(typ, hostname string, failed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.remaining == 0 {
		return
	}
	if failed {
		w.failures++
	} else {
		w.byPeer[hostname]++
		if w.byMethod[typ] == nil {
			w.byMethod[typ] = map[string]int32{}
		}
		w.byMethod[typ][hostname]++
	}
	w.remaining--
	if w.remaining == 0 {
		close(w.done)
	}
}

func (w *statsWatcher) response() *testpb.LoadBalancerStatsResponse {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := &testpb.LoadBalancerStatsResponse{
		RpcsByPeer:   map[string]int32{},
		NumFailures:  w.failures + w.remaining,
		RpcsByMethod: map[string]*testpb.LoadBalancerStatsResponse_RpcsByPeer{},
	}
	for peer, n := range w.byPeer {
		out.RpcsByPeer[peer] = n
	}
	for method, peers := range w.byMethod {
		copied := map[string]int32{}
		for peer, n := range peers {
			copied[peer] = n
		}
		out.RpcsByMethod[method] = &testpb.LoadBalancerStatsResponse_RpcsByPeer{RpcsByPeer: copied}
	}
	return out
}

// client is the state the sending loop and the services share.
type client struct {
	testgrpc.UnimplementedLoadBalancerStatsServiceServer
	testgrpc.UnimplementedXdsUpdateClientConfigureServiceServer

	mu           sync.Mutex
	configs      []rpcConfig
	nextID       int64
	watchers     map[*statsWatcher]struct{}
	started      map[string]int32
	succeeded    map[string]int32
	failed       map[string]int32
	perMethod    map[string]*testpb.LoadBalancerAccumulatedStatsResponse_MethodStats
	anySucceeded bool
}

// claim numbers the next RPC and returns the watchers that count it.
func (c *client) claim(typ string) []*statsWatcher {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.nextID
	c.nextID++
	name := accumulatedName[typ]
	c.started[name]++
	stats := c.perMethod[name]
	if stats == nil {
		stats = &testpb.LoadBalancerAccumulatedStatsResponse_MethodStats{Result: map[int32]int32{}}
		c.perMethod[name] = stats
	}
	stats.RpcsStarted++
	var covering []*statsWatcher
	for w := range c.watchers {
		if w.start <= id && id < w.end {
			covering = append(covering, w)
		}
	}
	return covering
}

func (c *client) finish(typ string, err error) (firstFailureAfterSuccess bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	name := accumulatedName[typ]
	c.perMethod[name].Result[int32(status.Code(err))]++
	if err != nil {
		c.failed[name]++
		return c.anySucceeded
	}
	c.succeeded[name]++
	c.anySucceeded = true
	return false
}

// call makes one RPC; it returns the answering server's hostname.
func (c *client) call(stub testgrpc.TestServiceClient, cfg rpcConfig) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	if len(cfg.md) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, cfg.md)
	}
	var header metadata.MD
	var hostname string
	var err error
	switch cfg.typ {
	case unaryCall:
		var resp *testpb.SimpleResponse
		resp, err = stub.UnaryCall(ctx, &testpb.SimpleRequest{FillServerId: true}, grpc.Header(&header))
		if resp != nil {
			hostname = resp.GetHostname()
		}
	case emptyCall:
		_, err = stub.EmptyCall(ctx, &testpb.Empty{}, grpc.Header(&header))
	}
	if hosts := header.Get("hostname"); len(hosts) > 0 {
		hostname = hosts[0]
	}
	return hostname, err
}

func (c *client) send(stub testgrpc.TestServiceClient, cfg rpcConfig) {
	watchers := c.claim(cfg.typ)
	hostname, err := c.call(stub, cfg)
	if c.finish(cfg.typ, err) && *failOnFailed {
		log.Fatalf("%s failed: %v", cfg.typ, err)
	}
	for _, w := range watchers {
		w.record(cfg.typ, hostname, err != nil)
	}
	if *printResponses {
		log.Printf("%s: hostname %q, error %v", cfg.typ, hostname, err)
	}
}

// GetClientStats waits for the next num_rpcs RPCs (or timeout_sec) and reports them.
func (c *client) GetClientStats(ctx context.Context, in *testpb.LoadBalancerStatsRequest) (*testpb.LoadBalancerStatsResponse, error) {
	w := &statsWatcher{
		byPeer: map[string]int32{}, byMethod: map[string]map[string]int32{},
		remaining: in.GetNumRpcs(), done: make(chan struct{}),
	}
	c.mu.Lock()
	w.start, w.end = c.nextID, c.nextID+int64(in.GetNumRpcs())
	c.watchers[w] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.watchers, w)
		c.mu.Unlock()
	}()
	if in.GetNumRpcs() > 0 {
		ctx, cancel := context.WithTimeout(ctx, time.Duration(in.GetTimeoutSec())*time.Second)
		defer cancel()
		select {
		case <-w.done:
		case <-ctx.Done():
		}
	}
	return w.response(), nil
}

// GetClientAccumulatedStats reports every RPC since the client started.
func (c *client) GetClientAccumulatedStats(context.Context, *testpb.LoadBalancerAccumulatedStatsRequest) (*testpb.LoadBalancerAccumulatedStatsResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := &testpb.LoadBalancerAccumulatedStatsResponse{
		NumRpcsStartedByMethod:   copyCounts(c.started),
		NumRpcsSucceededByMethod: copyCounts(c.succeeded),
		NumRpcsFailedByMethod:    copyCounts(c.failed),
		StatsPerMethod:           map[string]*testpb.LoadBalancerAccumulatedStatsResponse_MethodStats{},
	}
	for name, stats := range c.perMethod {
		out.StatsPerMethod[name] = &testpb.LoadBalancerAccumulatedStatsResponse_MethodStats{
			RpcsStarted: stats.RpcsStarted, Result: copyResults(stats.Result),
		}
	}
	return out, nil
}

// Configure replaces the RPC types sent, their metadata and their deadline.
func (c *client) Configure(_ context.Context, in *testpb.ClientConfigureRequest) (*testpb.ClientConfigureResponse, error) {
	timeout := time.Duration(*rpcTimeoutSec) * time.Second
	if in.GetTimeoutSec() > 0 {
		timeout = time.Duration(in.GetTimeoutSec()) * time.Second
	}
	mds := map[testpb.ClientConfigureRequest_RpcType]metadata.MD{}
	for _, m := range in.GetMetadata() {
		if mds[m.GetType()] == nil {
			mds[m.GetType()] = metadata.MD{}
		}
		mds[m.GetType()].Append(m.GetKey(), m.GetValue())
	}
	var configs []rpcConfig
	for _, t := range in.GetTypes() {
		switch t {
		case testpb.ClientConfigureRequest_UNARY_CALL:
			configs = append(configs, rpcConfig{unaryCall, mds[t], timeout})
		case testpb.ClientConfigureRequest_EMPTY_CALL:
			configs = append(configs, rpcConfig{emptyCall, mds[t], timeout})
		default:
			return nil, status.Errorf(codes.InvalidArgument, "unsupported RPC type %v", t)
		}
	}
	c.mu.Lock()
	c.configs = configs
	c.mu.Unlock()
	return &testpb.ClientConfigureResponse{}, nil
}

func copyCounts(in map[string]int32) map[string]int32 {
	out := make(map[string]int32, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

func copyResults(in map[int32]int32) map[int32]int32 {
	out := make(map[int32]int32, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

// parseFlags turns --rpc and --metadata into the RPC configurations.
func parseFlags() ([]rpcConfig, error) {
	timeout := time.Duration(*rpcTimeoutSec) * time.Second
	mds := map[string]metadata.MD{}
	if *metadataFlag != "" {
		for _, item := range strings.Split(*metadataFlag, ",") {
			parts := strings.SplitN(item, ":", 3)
			if len(parts) != 3 || accumulatedName[parts[0]] == "" {
				return nil, fmt.Errorf("--metadata: %q is not TYPE:KEY:VALUE with TYPE UnaryCall or EmptyCall", item)
			}
			if mds[parts[0]] == nil {
				mds[parts[0]] = metadata.MD{}
			}
			mds[parts[0]].Append(parts[1], parts[2])
		}
	}
	var configs []rpcConfig
	for _, typ := range strings.Split(*rpcFlag, ",") {
		if accumulatedName[typ] == "" {
			return nil, fmt.Errorf("--rpc: unsupported RPC type %q (UnaryCall, EmptyCall)", typ)
		}
		configs = append(configs, rpcConfig{typ, mds[typ], timeout})
	}
	return configs, nil
}

func main() {
	flag.Parse()
	configs, err := parseFlags()
	if err != nil {
		log.Fatal(err)
	}
	if *qps < 1 || *numChannels < 1 || *rpcTimeoutSec < 1 {
		log.Fatal("--qps, --num_channels and --rpc_timeout_sec must be at least 1")
	}
	c := &client{
		configs: configs, watchers: map[*statsWatcher]struct{}{},
		started: map[string]int32{}, succeeded: map[string]int32{}, failed: map[string]int32{},
		perMethod: map[string]*testpb.LoadBalancerAccumulatedStatsResponse_MethodStats{},
	}

	lis, err := net.Listen("tcp", fmt.Sprintf(":%d", *statsPort))
	if err != nil {
		log.Fatalf("stats port: %v", err)
	}
	stats := grpc.NewServer()
	testgrpc.RegisterLoadBalancerStatsServiceServer(stats, c)
	testgrpc.RegisterXdsUpdateClientConfigureServiceServer(stats, c)
	cleanup, err := admin.Register(stats)
	if err != nil {
		log.Fatalf("admin services: %v", err)
	}
	defer cleanup()
	reflection.Register(stats)
	go func() {
		if err := stats.Serve(lis); err != nil {
			log.Fatalf("stats server: %v", err)
		}
	}()

	stubs := make([]testgrpc.TestServiceClient, *numChannels)
	for i := range stubs {
		conn, err := grpc.NewClient(*server, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			log.Fatalf("channel to %s: %v", *server, err)
		}
		defer conn.Close()
		stubs[i] = testgrpc.NewTestServiceClient(conn)
	}

	ticker := time.NewTicker(time.Second / time.Duration(*qps))
	defer ticker.Stop()
	for i := 0; ; i++ {
		<-ticker.C
		stub := stubs[i%len(stubs)]
		c.mu.Lock()
		current := c.configs
		c.mu.Unlock()
		for _, cfg := range current {
			go c.send(stub, cfg)
		}
	}
}
