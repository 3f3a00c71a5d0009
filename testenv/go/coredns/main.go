// Command coredns is the real node's cluster DNS: CoreDNS with only the
// plugins testenv/node.py's Corefile uses. CoreDNS's own main links every
// plugin (and the cloud SDKs behind route53, azure, clouddns, etcd, ...),
// which costs minutes of compilation a test run never needs.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/ready"
)

// directives are the Corefile's plugins in the execution order of CoreDNS's
// core/dnsserver/zdirectives.go: a Corefile naming any other plugin is refused.
var directives = []string{
	"ready",
	"health",
	"errors",
	"loadbalance",
	"cache",
	"kubernetes",
}

func init() {
	if err := dnsserver.SetDirectives(directives); err != nil {
		panic(err)
	}
}

func main() {
	coremain.Run()
}
