//go:build tools

// Package notifypeers pins the real services the notification tests deliver
// to: Prometheus Alertmanager and the NATS server.
package notifypeers

import (
	_ "github.com/nats-io/nats-server/v2"
	_ "github.com/prometheus/alertmanager/cmd/alertmanager"
)
