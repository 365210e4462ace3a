package jetstream

import "strings"

// The layout of every store: bucket and stream names and the subjects
// behind them. Nothing outside this package spells "$KV.", "KV_", "$O."
// or "OBJ_": code that publishes to a bucket's subjects directly (batched
// asynchronous writes) takes them from a KV value, and the auth module
// builds NATS permissions from the same names.

// KV names a key-value bucket, its stream and its subjects.
type KV struct{ Bucket string }

// Stream is the bucket's stream.
func (k KV) Stream() string { return "KV_" + k.Bucket }

// Subject is the subject a key's value is stored under.
func (k KV) Subject(key string) string { return "$KV." + k.Bucket + "." + key }

// Subjects is the wildcard of every key's subject.
func (k KV) Subjects() string { return "$KV." + k.Bucket + ".>" }

// ObjectStore names an object store and its stream.
type ObjectStore struct{ Bucket string }

// Stream is the object store's stream.
func (o ObjectStore) Stream() string { return "OBJ_" + o.Bucket }

// Subjects is the wildcard of the store's chunk and meta subjects.
func (o ObjectStore) Subjects() string { return "$O." + o.Bucket + ".>" }

// AllObjectSubjects is the wildcard of every object store's subjects.
const AllObjectSubjects = "$O.>"

// Stores shared by the apps of a NATS, each created by the server.
var (
	InstancesKV = KV{BucketInstances}
	AppsKV      = KV{BucketApps}
	JobsKV      = KV{BucketJobs}
	FiresKV     = KV{BucketFires}
	LeasesKV    = KV{BucketLeases}
	WorkersKV   = KV{BucketWorkers}
	AlertsKV    = KV{BucketAlerts}
	RegistryKV  = KV{BucketContainers}
)

// Per-app stores: an app's task_info and its container artifacts live in
// stores of their own, so that NATS permissions can give an app's workers
// their app's data and nothing else (a shared bucket's purge, message
// get and object chunks cannot be confined to one app by subject).
const (
	tasksPrefix     = "jw_tasks_"
	artifactsPrefix = "jw_containers_"
)

// TasksKV is app's task_info bucket.
func TasksKV(app string) KV { return KV{tasksPrefix + storeToken(app)} }

// Artifacts is app's container artifact store.
func Artifacts(app string) ObjectStore { return ObjectStore{artifactsPrefix + storeToken(app)} }

// storeToken maps an app name (letters, digits, '-', '_', '=') to the
// alphabet of bucket names (no '='), one to one: '_' is doubled and '='
// becomes "_e".
func storeToken(app string) string {
	if !strings.ContainsAny(app, "_=") {
		return app
	}
	return strings.NewReplacer("_", "__", "=", "_e").Replace(app)
}
