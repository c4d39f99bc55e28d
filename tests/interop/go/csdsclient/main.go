// csdsclient asks an xDS management server for its clients' status over CSDS
// (envoy.service.status.v3.ClientStatusDiscoveryService), with go-control-plane's generated
// stubs, and prints the answers as JSON lines (protojson, proto field names):
//
//	csdsclient ADDR [exact|prefix NODE_ID]
//
// The first line is FetchClientStatus's answer, the second StreamClientStatus's (one request
// on the stream, then the stream is closed), each {"response": ..., "decoded": {...}}: each
// resource (`xds_config`) is decoded into its go-control-plane type and replaced by its type
// URL in "response" (protojson would need every nested extension type linked in), and
// "decoded" maps "TYPE_URL NAME" to the name read back from the decoded message. An RPC
// error is printed as {"error": "CODE: ..."} and the program exits 1.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	_ "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	statuspb "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	matcherpb "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
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
	decoded := map[string]string{}
	for _, config := range resp.GetConfig() {
		for _, generic := range config.GetGenericXdsConfigs() {
			resource := generic.GetXdsConfig()
			if resource == nil {
				continue
			}
			message, err := resource.UnmarshalNew()
			if err != nil {
				fail(err)
			}
			fields := message.ProtoReflect().Descriptor().Fields()
			field := fields.ByName("name")
			if field == nil {
				field = fields.ByName("cluster_name")
			}
			decoded[generic.GetTypeUrl()+" "+generic.GetName()] = message.ProtoReflect().Get(field).String()
			generic.XdsConfig = &anypb.Any{TypeUrl: resource.GetTypeUrl()}
		}
	}
	out, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(resp)
	if err != nil {
		fail(err)
	}
	names, _ := json.Marshal(decoded)
	fmt.Printf("{\"response\": %s, \"decoded\": %s}\n", out, names)
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
