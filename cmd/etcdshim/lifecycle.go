package main

import (
	"context"
	"fmt"

	oklog "github.com/oklog/run"
	"go.uber.org/zap"
)

// An actor is one long-running component of the shim: run serves until ctx
// ends and returns why it stopped (nil when ctx ended it). Whatever the
// component holds (listeners bound, connections to members, an embedded
// member) is released before run returns, also when ctx had ended before
// run began: that is how a failed start releases what was already built.
type actor struct {
	name string
	run  func(ctx context.Context) error
}

// lifecycle starts the shim's actors together and stops them together. They
// are added in the order they are built, each after what it depends on (the
// pool before the components calling members through it, those before the
// front that routes requests to them), and stop in the reverse order.
type lifecycle struct {
	actors []actor
	log    *zap.Logger
}

func (l *lifecycle) add(a ...actor) { l.actors = append(l.actors, a...) }

// run runs every actor until the first one returns (one failed, or the
// caller's actor saw SIGTERM) and then stops them all, newest first, each
// only once the one before has returned: the front has drained its
// connections before the pool they need closes. It returns the first
// actor's error.
//
// oklog/run's Group gives the order: it interrupts actors one at a time in
// the order they were added, and an interrupt here returns only once its
// actor has. (errgroup cancels one shared context, and every component
// would stop at once.)
func (l *lifecycle) run() error {
	var g oklog.Group
	for i := len(l.actors) - 1; i >= 0; i-- {
		a := l.actors[i]
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		g.Add(func() error {
			defer close(done)
			err := a.run(ctx)
			switch {
			case err == nil:
				return nil
			case ctx.Err() != nil:
				// Stopping: a failure on the way out is not why the
				// shim stopped.
				l.log.Warn("shutdown", zap.String("component", a.name), zap.Error(err))
				return nil
			default:
				return fmt.Errorf("%s: %w", a.name, err)
			}
		}, func(error) {
			cancel()
			<-done
			l.log.Debug("component stopped", zap.String("component", a.name))
		})
	}
	return g.Run()
}

// abort is a failed start: every actor added so far runs with a context
// that has already ended, newest first, so each releases what it holds and
// nothing keeps running. It returns err.
func (l *lifecycle) abort(err error) error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := len(l.actors) - 1; i >= 0; i-- {
		a := l.actors[i]
		if aerr := a.run(ctx); aerr != nil {
			l.log.Warn("releasing after a failed start", zap.String("component", a.name), zap.Error(aerr))
		}
		l.log.Debug("component stopped", zap.String("component", a.name))
	}
	return err
}
