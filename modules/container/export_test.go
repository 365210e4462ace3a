package container

// Retire marks c replaced (for tests of the reference count).
func Retire(c *Container) { c.retire() }

// Loads counts the versions m has loaded.
func Loads(m *Manager) int64 { return m.loads.Load() }
