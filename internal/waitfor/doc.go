// Package waitfor lets a test wait for what it needs, with a deadline, and
// fail with a message when it does not come: a condition (True), a value on
// a channel (Recv), goroutines (Group). It replaces sleeping a fixed time
// before an assertion, which is slow where the machine is fast and flaky
// where it is busy, and bare receives or waits, which hang until the suite
// times out when the other side failed.
//
// The deadlines bound failures, never successes: a test that passes does so
// as soon as its condition holds. Call these from the test's goroutine (they
// end the test with Fatalf).
package waitfor
