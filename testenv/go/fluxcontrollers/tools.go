//go:build tools

// Package fluxcontrollers pins Flux's own source-controller and
// kustomize-controller, which the takeover tests run before fluxd.
package fluxcontrollers

import (
	_ "github.com/fluxcd/kustomize-controller"
	_ "github.com/fluxcd/source-controller"
)
