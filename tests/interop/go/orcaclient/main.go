// orcaclient calls /xdscp.demo.Echo/Who on a set of backends through grpc-go's own
// weighted_round_robin balancer (gRFC A58), configured by a service config, without xDS: the
// weights come from the backends' ORCA load reports alone.
//
//	orcaclient [-oob] [-window N] ADDR...
//
// Per-call reports (the endpoint-load-metrics-bin trailer) by default; with -oob the balancer
// reads the out-of-band OpenRcaService stream instead (grpc-go then ignores the trailers).
// It prints one JSON line per window of N calls, {"counts": {"NAME": calls, ...}}, until it
// is killed; an RPC error is printed as {"error": "..."} and the program exits 1.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	_ "google.golang.org/grpc/balancer/weightedroundrobin"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const who = "/xdscp.demo.Echo/Who"

func serviceConfig(oob bool) string {
	return fmt.Sprintf(`{"loadBalancingConfig": [{"weighted_round_robin": {
		"blackoutPeriod": "1s", "weightUpdatePeriod": "0.1s",
		"enableOobLoadReport": %t, "oobReportingPeriod": "1s"}}]}`, oob)
}

func fail(err error) {
	line, _ := json.Marshal(map[string]string{"error": err.Error()})
	fmt.Println(string(line))
	os.Exit(1)
}

func main() {
	oob := flag.Bool("oob", false, "weigh by the out-of-band stream instead of per-call trailers")
	window := flag.Int("window", 700, "calls per printed line")
	flag.Parse()
	addresses := []resolver.Address{}
	for _, addr := range flag.Args() {
		addresses = append(addresses, resolver.Address{Addr: addr})
	}
	backends := manual.NewBuilderWithScheme("orca")
	backends.InitialState(resolver.State{Addresses: addresses})
	conn, err := grpc.NewClient("orca:///backends",
		grpc.WithResolvers(backends),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig(*oob)))
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	for {
		counts := map[string]int{}
		for i := 0; i < *window; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			reply := &wrapperspb.StringValue{}
			err := conn.Invoke(ctx, who, &wrapperspb.StringValue{}, reply)
			cancel()
			if err != nil {
				fail(err)
			}
			counts[reply.GetValue()]++
		}
		line, _ := json.Marshal(map[string]map[string]int{"counts": counts})
		fmt.Println(string(line))
	}
}
