//go:build tools

// Package coredns pins the CoreDNS server that the real node's cluster DNS runs.
package coredns

import _ "github.com/coredns/coredns"
