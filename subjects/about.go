package subjects

import "strings"

// Refs names what a message is about: the Jw-App, Jw-Job, Jw-Instance
// and Jw-Task headers. Empty fields are not about one value.
type Refs struct {
	App, Job, Instance, Task string
}

// About is implemented by messages about one job, instance or task; the
// rpc layer, the one place messages are sent, copies the answer into the
// headers (and the app from the subject), so no call site sets them.
type About interface {
	About() Refs
}

// AppOf returns the app token of a jetworker subject (jw.<app>.…), or "".
func AppOf(subject string) string {
	rest, ok := strings.CutPrefix(subject, Prefix+".")
	if !ok {
		return ""
	}
	app, _, _ := strings.Cut(rest, ".")
	return app
}

// About implements About.
func (m *RunInstance) About() Refs { return Refs{Job: m.Job.JobID, Instance: m.InstanceID} }

// About implements About.
func (m *StopInstance) About() Refs { return Refs{Instance: m.InstanceID} }

// About implements About.
func (m *QueryInstance) About() Refs { return Refs{Instance: m.InstanceID} }

// About implements About.
func (m *InstanceStatus) About() Refs { return Refs{Job: m.JobID, Instance: m.InstanceID} }

// About implements About (the task when the batch holds one).
func (m *StartTasks) About() Refs {
	r := Refs{Job: m.Job.JobID, Instance: m.InstanceID}
	if len(m.Tasks) == 1 {
		r.Task = m.Tasks[0].TaskID
	}
	return r
}

// About implements About (the task when the batch holds one).
func (m *TaskReports) About() Refs {
	r := Refs{Instance: m.InstanceID}
	if len(m.Reports) == 1 {
		r.Task = m.Reports[0].TaskID
	}
	return r
}

// About implements About: the task that mapped.
func (m *MapRequest) About() Refs { return Refs{Instance: m.InstanceID, Task: m.ParentID} }

// About implements About.
func (m *PTStatus) About() Refs { return Refs{Instance: m.InstanceID} }

// About implements About.
func (m *RunJob) About() Refs { return Refs{App: m.App, Job: m.Job.JobID} }

// About implements About.
func (m *RunJobReply) About() Refs { return Refs{Instance: m.InstanceID} }

// About implements About.
func (m *LogBatch) About() Refs { return Refs{App: m.App, Instance: m.InstanceID} }

// About implements About (the instance when every run shares it).
func (m *RunInstances) About() Refs {
	if len(m.Runs) == 0 {
		return Refs{}
	}
	r := m.Runs[0].About()
	for i := 1; i < len(m.Runs) && (r.Job != "" || r.Instance != ""); i++ {
		if m.Runs[i].Job.JobID != r.Job {
			r.Job = ""
		}
		if m.Runs[i].InstanceID != r.Instance {
			r.Instance = ""
		}
	}
	return r
}

// About implements About (the instance when every status shares it).
func (m *InstanceStatuses) About() Refs {
	if len(m.Statuses) == 0 {
		return Refs{}
	}
	r := m.Statuses[0].About()
	for i := 1; i < len(m.Statuses) && (r.Job != "" || r.Instance != ""); i++ {
		if m.Statuses[i].JobID != r.Job {
			r.Job = ""
		}
		if m.Statuses[i].InstanceID != r.Instance {
			r.Instance = ""
		}
	}
	return r
}

// About implements About (the job when every run shares it).
func (m *RunBatch) About() Refs {
	r := Refs{App: m.App}
	if len(m.Runs) > 0 {
		r.Job = m.Runs[0].Job.JobID
		for i := 1; i < len(m.Runs) && r.Job != ""; i++ {
			if m.Runs[i].Job.JobID != r.Job {
				r.Job = ""
			}
		}
	}
	return r
}

// About implements About.
func (m *JobRef) About() Refs { return Refs{App: m.App, Job: m.ID} }

// About implements About.
func (m *JobRun) About() Refs { return Refs{App: m.App, Job: m.ID} }

// About implements About.
func (m *JobSave) About() Refs { return Refs{App: m.Job.App, Job: m.Job.ID} }
