package client

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/container"
	"github.com/jetworker/jetworker/subjects"
)

// PushContainer stores a WebAssembly module as a version of container
// name (its md5) and records it with the app's owner, which reads its
// manifest and refuses a module that is no container. It does not deploy
// it (DeployContainer does). by says who pushed (free text).
func (c *Client) PushContainer(ctx context.Context, app, name string, wasm []byte, by string) (*subjects.ContainerState, error) {
	// The app's owner creates its artifact store as it takes the app:
	// ask for it first (this takes an app nobody owns yet).
	if _, err := c.Owner(ctx, app); err != nil {
		return nil, err
	}
	store, err := jetstream.OpenContainers(ctx, c.js, jetstream.Bind)
	if err != nil {
		return nil, err
	}
	version := container.MD5(wasm)
	if _, err := store.PutArtifact(ctx, app, name, version, bytes.NewReader(wasm)); err != nil {
		return nil, err
	}
	return c.container(ctx, &subjects.ContainerRequest{App: app, Op: subjects.ContainerPush, Name: name, Version: version, By: by})
}

// PushContainerURL records a version that workers fetch from url (http or
// https); version is the module's md5, which the owner and every worker
// check.
func (c *Client) PushContainerURL(ctx context.Context, app, name, url, version, by string) (*subjects.ContainerState, error) {
	return c.container(ctx, &subjects.ContainerRequest{App: app, Op: subjects.ContainerPush, Name: name, Version: version, URL: url, By: by})
}

// DeployContainer makes version ("" = the newest pushed) the one every
// worker of the app serves; workers load it at once (ContainerList shows
// each worker's).
func (c *Client) DeployContainer(ctx context.Context, app, name, version string) (*subjects.ContainerState, error) {
	return c.container(ctx, &subjects.ContainerRequest{App: app, Op: subjects.ContainerDeploy, Name: name, Version: version})
}

// RollbackContainer deploys the version deployed before the current one.
func (c *Client) RollbackContainer(ctx context.Context, app, name string) (*subjects.ContainerState, error) {
	return c.container(ctx, &subjects.ContainerRequest{App: app, Op: subjects.ContainerRollback, Name: name})
}

// DestroyContainer removes a container everywhere (each worker closes it
// once its running tasks end).
func (c *Client) DestroyContainer(ctx context.Context, app, name string) error {
	var reply subjects.ContainerReply
	return c.toOwner(ctx, app, subjects.VerbContainer, &subjects.ContainerRequest{App: app, Op: subjects.ContainerDestroy, Name: name}, &reply)
}

// Container returns one container (its versions).
func (c *Client) Container(ctx context.Context, app, name string) (*subjects.ContainerState, error) {
	return c.container(ctx, &subjects.ContainerRequest{App: app, Op: subjects.ContainerGet, Name: name})
}

// ListContainers returns the app's containers and what each live worker
// has loaded.
func (c *Client) ListContainers(ctx context.Context, app string) (*subjects.ContainerReply, error) {
	var reply subjects.ContainerReply
	if err := c.toOwner(ctx, app, subjects.VerbContainer, &subjects.ContainerRequest{App: app, Op: subjects.ContainerList}, &reply); err != nil {
		return nil, err
	}
	return &reply, nil
}

// pushTimeout is how long a push may take to be answered (the owner
// reads and compiles the module; its endpoint allows 2 minutes).
const pushTimeout = 2*time.Minute + 10*time.Second

func (c *Client) container(ctx context.Context, req *subjects.ContainerRequest) (*subjects.ContainerState, error) {
	var reply subjects.ContainerReply
	if err := c.askOwnerWithin(ctx, req.App, subjects.VerbContainer, req, &reply, false, pushTimeout); err != nil {
		return nil, err
	}
	if len(reply.Containers) != 1 {
		return nil, fmt.Errorf("container %s: the server answered %d containers", req.Name, len(reply.Containers))
	}
	return &reply.Containers[0], nil
}
