package guest

import "embed"

// Sources are this package's files, which `jetworker container init`
// copies into a new container project (the package has no dependencies,
// so a project builds without fetching jetworker's module).
//
//go:embed guest.go abi.go exports_wasip1.go host_other.go
var Sources embed.FS
