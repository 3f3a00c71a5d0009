// Command fluxd-kustomize builds kustomizations for fluxd in one long-lived
// process, so a build costs no process start.
//
// It reads newline-delimited JSON requests on stdin and writes one JSON line
// per request on stdout, in completion order, matched by id:
//
//	{"id": 7, "directory": "/abs/dir", "loadRestrictor": "LoadRestrictionsRootOnly"}
//	{"id": 7, "ok": true, "yaml": "apiVersion: v1\n..."}
//	{"id": 7, "ok": false, "error": "accumulating resources: ..."}
//
// A build is what `kubectl kustomize DIR --load-restrictor X` does, with the
// same kustomize API version, so the YAML is byte-identical and the error is
// the text kubectl prints after "error: ". The process exits when stdin
// closes. Everything else (generated kustomizations, substitution, timeouts)
// is fluxd's, in Python.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/openapi"
	"sigs.k8s.io/kustomize/kyaml/openapi/kubernetesapi"
)

type request struct {
	ID             uint64 `json:"id"`
	Directory      string `json:"directory"`
	LoadRestrictor string `json:"loadRestrictor"`
}

type response struct {
	ID    uint64 `json:"id"`
	OK    bool   `json:"ok"`
	YAML  string `json:"yaml,omitempty"`
	Error string `json:"error,omitempty"`
}

// kustomize keeps its OpenAPI schema in package globals that concurrent builds
// race on (kustomize issue 3659), so builds take turns, as in Flux's
// kustomize-controller.
var buildMutex sync.Mutex

func main() {
	out := &replies{encoder: json.NewEncoder(os.Stdout)}
	in := bufio.NewReader(os.Stdin)
	var running sync.WaitGroup
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			var req request
			if jsonErr := json.Unmarshal(line, &req); jsonErr != nil {
				fmt.Fprintf(os.Stderr, "fluxd-kustomize: unreadable request: %v\n", jsonErr)
			} else {
				running.Add(1)
				go func() {
					defer running.Done()
					out.send(build(req))
				}()
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "fluxd-kustomize: reading requests: %v\n", err)
			break
		}
	}
	running.Wait()
}

// replies writes whole lines only, one goroutine at a time.
type replies struct {
	mu      sync.Mutex
	encoder *json.Encoder
}

func (r *replies) send(reply response) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.encoder.Encode(reply); err != nil {
		// fluxd is gone: nobody is left to answer.
		os.Exit(1)
	}
}

func build(req request) (reply response) {
	reply.ID = req.ID
	restrictions := types.LoadRestrictionsRootOnly
	switch req.LoadRestrictor {
	case "", types.LoadRestrictionsRootOnly.String():
	case types.LoadRestrictionsNone.String():
		restrictions = types.LoadRestrictionsNone
	default:
		reply.Error = fmt.Sprintf("unknown load restrictor %q", req.LoadRestrictor)
		return reply
	}

	buildMutex.Lock()
	defer buildMutex.Unlock()
	// A panic fails this build, not every build in flight (kubectl would have
	// died with it).
	defer func() {
		if recovered := recover(); recovered != nil {
			reply = response{ID: req.ID, Error: fmt.Sprintf("panic: %v", recovered)}
		}
	}()
	// A fresh kubectl starts with kustomize's built-in schema; a kustomization
	// with an `openapi` field replaces it globally, so the next build starts
	// afresh. The built-in schema itself is parsed once and kept.
	if openapi.GetSchemaVersion() != kubernetesapi.DefaultOpenAPI {
		openapi.ResetOpenAPI()
	}
	// `kubectl kustomize`'s options: the defaults, no reordering flag, plugins
	// and helm off, no managed-by label.
	options := krusty.MakeDefaultOptions()
	options.Reorder = krusty.ReorderOptionUnspecified
	options.LoadRestrictions = restrictions
	options.PluginConfig.HelmConfig.Command = "helm"
	resources, err := krusty.MakeKustomizer(options).Run(filesys.MakeFsOnDisk(), req.Directory)
	if err != nil {
		reply.Error = err.Error()
		return reply
	}
	yaml, err := resources.AsYaml()
	if err != nil {
		reply.Error = err.Error()
		return reply
	}
	reply.OK = true
	reply.YAML = string(yaml)
	return reply
}
