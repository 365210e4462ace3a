package container

// Retire marks c replaced (for tests of the reference count).
func Retire(c *Container) { c.retire() }
