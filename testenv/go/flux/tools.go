//go:build tools

// Package flux pins the flux CLI that the end-to-end tests run against fluxd.
package flux

import _ "github.com/fluxcd/flux2/v2/cmd/flux"
