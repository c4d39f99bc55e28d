// Command go-control-plane serves the fan-out benchmark's snapshot with
// github.com/envoyproxy/go-control-plane (SnapshotCache + the SotW/ADS server).
//
// Usage: go-control-plane -resources DIR [-port 0]
//
// DIR holds the serialized DiscoveryResponses written by bench.fanout.resources
// (cds.pb, eds-0.pb .. eds-K.pb), so this server sends the same resources as
// the Python baseline. Every node maps to one group (constant NodeHash): one
// snapshot, one SetSnapshot per change, as a control plane serving one
// configuration to many clients would use the library.
//
// Control: prints {"event":"listening","port":P}; stdin "CHANGE K" sets the
// snapshot built at start-up from eds-K.pb (every change is pre-built, like the
// baseline's pre-serialized responses): a snapshot whose Cluster version is unchanged and whose
// ClusterLoadAssignment version is the file's, and prints {"event":"pushed"};
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
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

const group = "all"

// oneGroup maps every node to the same snapshot.
type oneGroup struct{}

func (oneGroup) ID(*core.Node) string { return group }

func emit(event string, fields map[string]any) {
	fields["event"] = event
	out, _ := json.Marshal(fields)
	fmt.Println(string(out))
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
	out := make([]types.Resource, 0, len(response.GetResources()))
	for _, item := range response.GetResources() {
		message, err := item.UnmarshalNew()
		if err != nil {
			return "", nil, err
		}
		out = append(out, message.(types.Resource))
	}
	return response.GetVersionInfo(), out, nil
}

// snapshot builds a snapshot with per-type versions taken from the files.
func snapshot(dir string, change int) (*cache.Snapshot, error) {
	cdsVersion, clusters, err := load(filepath.Join(dir, "cds.pb"))
	if err != nil {
		return nil, err
	}
	edsVersion, clas, err := load(filepath.Join(dir, fmt.Sprintf("eds-%d.pb", change)))
	if err != nil {
		return nil, err
	}
	snap := &cache.Snapshot{}
	snap.Resources[types.Cluster] = cache.NewResources(cdsVersion, clusters)
	snap.Resources[types.Endpoint] = cache.NewResources(edsVersion, clas)
	return snap, snap.Consistent()
}

// prebuild builds the snapshot of every eds-K.pb in dir, keyed by K.
func prebuild(dir string) (map[int]*cache.Snapshot, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "eds-*.pb"))
	if err != nil {
		return nil, err
	}
	out := make(map[int]*cache.Snapshot, len(paths))
	for _, path := range paths {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "eds-"), ".pb")
		change, err := strconv.Atoi(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if out[change], err = snapshot(dir, change); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if _, ok := out[0]; !ok {
		return nil, fmt.Errorf("%s: no eds-0.pb", dir)
	}
	return out, nil
}

func main() {
	dir := flag.String("resources", "", "directory of cds.pb and eds-K.pb")
	port := flag.Int("port", 0, "port on 127.0.0.1 (0: any free port)")
	flag.Parse()
	ctx := context.Background()
	snapshots := cache.NewSnapshotCache(true, oneGroup{}, nil)
	prebuilt, err := prebuild(*dir)
	if err != nil {
		log.Fatalf("snapshot: %v", err)
	}
	if err := snapshots.SetSnapshot(ctx, group, prebuilt[0]); err != nil {
		log.Fatalf("set snapshot: %v", err)
	}
	listener, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	grpcServer := grpc.NewServer(grpc.MaxConcurrentStreams(1_000_000))
	discovery.RegisterAggregatedDiscoveryServiceServer(grpcServer, server.NewServer(ctx, snapshots, nil))
	go func() { _ = grpcServer.Serve(listener) }()
	emit("listening", map[string]any{"port": listener.Addr().(*net.TCPAddr).Port, "type_urls": []string{resource.ClusterType, resource.EndpointType}})
	control(ctx, prebuilt, snapshots)
	grpcServer.Stop()
}

// control reads CHANGE/STOP lines from stdin.
func control(ctx context.Context, prebuilt map[int]*cache.Snapshot, snapshots cache.SnapshotCache) {
	scanner := bufio.NewScanner(os.Stdin)
	for scanner.Scan() {
		words := strings.Fields(scanner.Text())
		if len(words) == 0 {
			continue
		}
		if words[0] == "STOP" {
			return
		}
		if words[0] == "CHANGE" && len(words) == 2 {
			change, err := strconv.Atoi(words[1])
			if err != nil {
				log.Printf("bad change %q", words[1])
				continue
			}
			started := monotonic()
			snap, ok := prebuilt[change]
			if !ok {
				log.Printf("change %d: no eds-%d.pb", change, change)
				continue
			}
			if err := snapshots.SetSnapshot(ctx, group, snap); err != nil {
				log.Printf("change %d: %v", change, err)
				continue
			}
			emit("pushed", map[string]any{"change": change, "t_start": started, "t_queued": monotonic(), "at": time.Now().UTC().Format(time.RFC3339Nano)})
		}
	}
}
