"""A real Kubernetes control plane on loopback, for fluxd's tests and demo.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (fake
nodes whose Pods become Running and Ready) are built from pinned Go modules by
:mod:`testenv.build` and run by :mod:`testenv.cluster`.
"""
