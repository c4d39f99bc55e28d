// Command interopserver is an xDS interop test server: the program grpc/grpc's
// doc/xds-test-descriptions.md calls "the test server", written on grpc-go's public API and
// its generated grpc.testing stubs (google.golang.org/grpc/interop/grpc_testing).
//
// On --port it serves grpc.testing.TestService: EmptyCall and UnaryCall answer with the
// "hostname" response header, and UnaryCall also with SimpleResponse.hostname and server_id.
// The hostname is the machine's, or --host_name_override. Beside it, as the official server
// does without --secure_mode, the same port serves the maintenance services:
// grpc.health.v1.Health (service "" SERVING at start), grpc.testing.XdsUpdateHealthService
// (SetServing / SetNotServing change what Health answers), the admin services and
// reflection. A --maintenance_port other than --port serves the maintenance services there
// too, sharing the same health status.
//
// Of the "rpc-behavior" request header, both calls honour "sleep-N" (answer after N
// seconds, or end when the RPC does), as the official server does; its other behaviours are
// not implemented (not needed by the scenarios run here), nor --secure_mode (xDS server-side
// credentials), SendHookRequest and response payloads.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/admin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	_ "google.golang.org/grpc/xds" // CSDS in the admin services
)

var (
	port             = flag.Int("port", 8080, "port of the test service (and the maintenance services)")
	maintenancePort  = flag.Int("maintenance_port", 8080, "port of the maintenance services (health, XdsUpdateHealthService, admin)")
	serverID         = flag.String("server_id", "go_server", "server_id in every SimpleResponse")
	hostNameOverride = flag.String("host_name_override", "", "the hostname to answer with instead of the machine's")
	secureMode       = flag.Bool("secure_mode", false, "xDS server-side security: not supported, must be false")
)

type testService struct {
	testgrpc.UnimplementedTestServiceServer
	hostname, serverID string
}

// behave applies the "rpc-behavior" header's sleep-N (comma-separated values, any number
// of headers): it returns after N seconds, or the RPC's error when it ends first.
func behave(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, value := range md.Get("rpc-behavior") {
		for _, behavior := range strings.Split(value, ",") {
			seconds, found := strings.CutPrefix(strings.TrimSpace(behavior), "sleep-")
			if !found {
				continue
			}
			n, err := strconv.Atoi(seconds)
			if err != nil || n < 0 {
				return status.Errorf(codes.InvalidArgument, "rpc-behavior %q: sleep-N takes whole seconds", behavior)
			}
			select {
			case <-time.After(time.Duration(n) * time.Second):
			case <-ctx.Done():
				return status.FromContextError(ctx.Err()).Err()
			}
		}
	}
	return nil
}

func (s *testService) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	if err := behave(ctx); err != nil {
		return nil, err
	}
	if err := grpc.SetHeader(ctx, metadata.Pairs("hostname", s.hostname)); err != nil {
		return nil, err
	}
	return &testpb.Empty{}, nil
}

func (s *testService) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if err := behave(ctx); err != nil {
		return nil, err
	}
	if err := grpc.SetHeader(ctx, metadata.Pairs("hostname", s.hostname)); err != nil {
		return nil, err
	}
	return &testpb.SimpleResponse{ServerId: s.serverID, Hostname: s.hostname}, nil
}

// updateHealth is XdsUpdateHealthService: it sets what the health service answers.
type updateHealth struct {
	testgrpc.UnimplementedXdsUpdateHealthServiceServer
	health *health.Server
}

func (u *updateHealth) SetServing(context.Context, *testpb.Empty) (*testpb.Empty, error) {
	u.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	return &testpb.Empty{}, nil
}

func (u *updateHealth) SetNotServing(context.Context, *testpb.Empty) (*testpb.Empty, error) {
	u.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	return &testpb.Empty{}, nil
}

func (u *updateHealth) SendHookRequest(context.Context, *testpb.HookRequest) (*testpb.HookResponse, error) {
	return nil, status.Error(codes.Unimplemented, "hooks are not implemented")
}

// maintenance registers the health, XdsUpdateHealthService, admin and reflection services.
func maintenance(s *grpc.Server, hs *health.Server) func() {
	healthgrpc.RegisterHealthServer(s, hs)
	testgrpc.RegisterXdsUpdateHealthServiceServer(s, &updateHealth{health: hs})
	cleanup, err := admin.Register(s)
	if err != nil {
		log.Fatalf("admin services: %v", err)
	}
	reflection.Register(s)
	return cleanup
}

func serve(s *grpc.Server, p int) {
	lis, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
	if err != nil {
		log.Fatalf("port %d: %v", p, err)
	}
	if err := s.Serve(lis); err != nil {
		log.Fatalf("serving on %d: %v", p, err)
	}
}

func main() {
	flag.Parse()
	if *secureMode {
		log.Fatal("--secure_mode is not supported")
	}
	hostname := *hostNameOverride
	if hostname == "" {
		name, err := os.Hostname()
		if err != nil {
			log.Fatalf("hostname: %v", err)
		}
		hostname = name
	}
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)

	srv := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(srv, &testService{hostname: hostname, serverID: *serverID})
	defer maintenance(srv, hs)()
	if *maintenancePort != *port {
		extra := grpc.NewServer()
		defer maintenance(extra, hs)()
		go serve(extra, *maintenancePort)
	}
	serve(srv, *port)
}
