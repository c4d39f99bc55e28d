"""Generated etcd API subset."""
