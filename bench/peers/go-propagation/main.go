// Command go-propagation serves the propagation benchmark's snapshots with
// github.com/envoyproxy/go-control-plane (SnapshotCache + the SotW/ADS server),
// driven by the same etcd writes as xdscp.
//
// Usage: go-propagation -resources DIR -etcd URL -prefix PREFIX
//
// DIR holds serialized DiscoveryResponses written by bench.propagate.gopeer from
// the snapshots xdscp built for the same changes: cds.pb, lds.pb, rds.pb and
// eds-0.pb .. eds-K.pb, so Envoy receives byte-identical resources from both
// servers. Every change's snapshot is built at start-up.
//
// Input: a watch on PREFIX with the Go etcd client (go.etcd.io/etcd/client/v3),
// so the path measured is the same as xdscp's: etcd write -> watch event ->
// snapshot -> push -> Envoy's ACK. A PUT of key PREFIX+"eK" sets snapshot K
// (translation is not on this path: xdscp's snapshots are pre-built).
//
// Output (JSON lines, CLOCK_MONOTONIC seconds):
//
//	{"event":"listening","port":P}
//	{"event":"set","change":K,"t_watch":...,"t_set":...}    per watch event
//	{"event":"ack","change":K,"t":...}                       Envoy ACKed eds-K (K: the change set last)
//
// "STOP" or end of input exits.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

const group = "all"

type oneGroup struct{}

func (oneGroup) ID(*core.Node) string { return group }

var out sync.Mutex

func emit(event string, fields map[string]any) {
	fields["event"] = event
	line, _ := json.Marshal(fields)
	out.Lock()
	defer out.Unlock()
	fmt.Println(string(line))
}

func monotonic() float64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

// load reads one serialized DiscoveryResponse and unpacks its resources.
func load(path string) (string, []types.Resource, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	var response discovery.DiscoveryResponse
	if err := proto.Unmarshal(data, &response); err != nil {
		return "", nil, err
	}
	items := make([]types.Resource, 0, len(response.GetResources()))
	for _, item := range response.GetResources() {
		message, err := item.UnmarshalNew()
		if err != nil {
			return "", nil, err
		}
		items = append(items, message.(types.Resource))
	}
	return response.GetVersionInfo(), items, nil
}

// prebuild builds one snapshot per eds-K.pb; returns them and their EDS versions by K.
func prebuild(dir string) (map[int]*cache.Snapshot, map[int]string, error) {
	static := map[types.ResponseType]string{types.Cluster: "cds.pb", types.Listener: "lds.pb", types.Route: "rds.pb"}
	base := map[types.ResponseType]cache.Resources{}
	for kind, name := range static {
		version, items, err := load(filepath.Join(dir, name))
		if err != nil {
			return nil, nil, err
		}
		base[kind] = cache.NewResources(version, items)
	}
	paths, err := filepath.Glob(filepath.Join(dir, "eds-*.pb"))
	if err != nil {
		return nil, nil, err
	}
	snapshots, versions := map[int]*cache.Snapshot{}, map[int]string{}
	for _, path := range paths {
		change, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "eds-"), ".pb"))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		version, clas, err := load(path)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		snap := &cache.Snapshot{}
		for kind, resources := range base {
			snap.Resources[kind] = resources
		}
		snap.Resources[types.Endpoint] = cache.NewResources(version, clas)
		if err := snap.Consistent(); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		snapshots[change], versions[change] = snap, version
	}
	if _, ok := snapshots[0]; !ok {
		return nil, nil, fmt.Errorf("%s: no eds-0.pb", dir)
	}
	return snapshots, versions, nil
}

// current is the change whose snapshot was set last (changes K and K+4 point at the
// same backend, so their EDS versions are equal: the version alone does not name K).
var current struct {
	sync.Mutex
	change int
}

// acks reports Envoy's ACK of the current change's EDS version (the server's own callback).
func acks(versions map[int]string) server.CallbackFuncs {
	return server.CallbackFuncs{StreamRequestFunc: func(_ int64, req *discovery.DiscoveryRequest) error {
		now := monotonic()
		if req.GetTypeUrl() != resource.EndpointType || req.GetResponseNonce() == "" || req.GetErrorDetail() != nil {
			return nil
		}
		current.Lock()
		change := current.change
		current.Unlock()
		if versions[change] == req.GetVersionInfo() {
			emit("ack", map[string]any{"change": change, "t": now})
		}
		return nil
	}}
}

// follow sets snapshot K for every PUT of PREFIX+"eK".
func follow(ctx context.Context, watch clientv3.WatchChan, prefix string, snapshots map[int]*cache.Snapshot, cache_ cache.SnapshotCache) {
	for response := range watch {
		now := monotonic()
		for _, event := range response.Events {
			if event.Type != clientv3.EventTypePut {
				continue
			}
			var value map[string]any
			if err := json.Unmarshal(event.Kv.Value, &value); err != nil {
				log.Printf("value of %s: %v", event.Kv.Key, err)
				continue
			}
			change, err := strconv.Atoi(strings.TrimPrefix(strings.TrimPrefix(string(event.Kv.Key), prefix), "e"))
			snap, ok := snapshots[change]
			if err != nil || !ok {
				log.Printf("no snapshot for %s", event.Kv.Key)
				continue
			}
			current.Lock()
			current.change = change
			current.Unlock()
			if err := cache_.SetSnapshot(ctx, group, snap); err != nil {
				log.Printf("change %d: %v", change, err)
				continue
			}
			emit("set", map[string]any{"change": change, "t_watch": now, "t_set": monotonic()})
		}
	}
}

func main() {
	dir := flag.String("resources", "", "directory of cds.pb, lds.pb, rds.pb and eds-K.pb")
	etcdURL := flag.String("etcd", "http://127.0.0.1:2379", "etcd endpoint")
	prefix := flag.String("prefix", "", "etcd prefix of the service's endpoints")
	flag.Parse()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	snapshots, versions, err := prebuild(*dir)
	if err != nil {
		log.Fatalf("snapshots: %v", err)
	}
	snapshotCache := cache.NewSnapshotCache(true, oneGroup{}, nil)
	if err := snapshotCache.SetSnapshot(ctx, group, snapshots[0]); err != nil {
		log.Fatalf("set snapshot: %v", err)
	}
	etcd, err := clientv3.New(clientv3.Config{Endpoints: []string{*etcdURL}})
	if err != nil {
		log.Fatalf("etcd: %v", err)
	}
	defer etcd.Close()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	grpcServer := grpc.NewServer()
	discovery.RegisterAggregatedDiscoveryServiceServer(grpcServer, server.NewServer(ctx, snapshotCache, acks(versions)))
	go func() { _ = grpcServer.Serve(listener) }()
	// Listening is announced once the watch exists: no change can slip past it.
	watch := etcd.Watch(ctx, *prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	if created := <-watch; !created.Created {
		log.Fatalf("etcd watch not created: %v", created.Err())
	}
	go follow(ctx, watch, *prefix, snapshots, snapshotCache)
	emit("listening", map[string]any{"port": listener.Addr().(*net.TCPAddr).Port})
	scanner := bufio.NewScanner(os.Stdin)
	for scanner.Scan() {
		if strings.TrimSpace(scanner.Text()) == "STOP" {
			break
		}
	}
	grpcServer.Stop()
}
