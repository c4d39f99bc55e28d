// csdsclient asks an xDS management server for its clients' status over CSDS
// (envoy.service.status.v3.ClientStatusDiscoveryService), with go-control-plane's generated
// stubs, and prints the answers as JSON lines (protojson, proto field names):
//
//	csdsclient ADDR [exact|prefix NODE_ID]
//
// The first line is FetchClientStatus's answer, the second StreamClientStatus's (one request
// on the stream, then the stream is closed). An RPC error is printed as {"error": "CODE: ..."}
// and the program exits 1.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	statuspb "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	matcherpb "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

func request(args []string) *statuspb.ClientStatusRequest {
	req := &statuspb.ClientStatusRequest{}
	if len(args) != 2 {
		return req
	}
	matcher := &matcherpb.StringMatcher{}
	switch args[0] {
	case "exact":
		matcher.MatchPattern = &matcherpb.StringMatcher_Exact{Exact: args[1]}
	case "prefix":
		matcher.MatchPattern = &matcherpb.StringMatcher_Prefix{Prefix: args[1]}
	default:
		fail(fmt.Errorf("matcher must be exact or prefix, got %q", args[0]))
	}
	req.NodeMatchers = []*matcherpb.NodeMatcher{{NodeId: matcher}}
	return req
}

func fail(err error) {
	code := status.Code(err).String()
	fmt.Printf("{\"error\": %q}\n", code+": "+status.Convert(err).Message())
	os.Exit(1)
}

func show(resp *statuspb.ClientStatusResponse) {
	out, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(resp)
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: csdsclient ADDR [exact|prefix NODE_ID]")
		os.Exit(2)
	}
	conn, err := grpc.NewClient(os.Args[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := statuspb.NewClientStatusDiscoveryServiceClient(conn)
	req := request(os.Args[2:])

	resp, err := client.FetchClientStatus(ctx, req)
	if err != nil {
		fail(err)
	}
	show(resp)

	stream, err := client.StreamClientStatus(ctx)
	if err != nil {
		fail(err)
	}
	if err := stream.Send(req); err != nil {
		fail(err)
	}
	resp, err = stream.Recv()
	if err != nil {
		fail(err)
	}
	show(resp)
	if err := stream.CloseSend(); err != nil {
		fail(err)
	}
}
