package v2migrate

import (
	"fmt"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Progress shows an import's counts: a line redrawn in place on a terminal,
// or a log line every few seconds otherwise (a redrawn line would fill log
// files with carriage returns). A nil *Progress shows nothing.
type Progress struct {
	w     io.Writer
	tty   bool
	log   *zap.Logger
	every time.Duration

	mu                sync.Mutex
	root              string
	total, done       int
	totalBytes, bytes int64
	start, last       time.Time
}

// NewProgress draws on w when tty, else logs to log.
func NewProgress(w io.Writer, tty bool, log *zap.Logger) *Progress {
	every := 2 * time.Second
	if tty {
		every = 100 * time.Millisecond
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Progress{w: w, tty: tty, log: log, every: every}
}

// Start begins a root of total nodes and bytes.
func (p *Progress) Start(root string, total int, totalBytes int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.root, p.total, p.totalBytes, p.done, p.bytes = root, total, totalBytes, 0, 0
	p.start, p.last = time.Now(), time.Time{}
}

// Add counts nodes handled and bytes written.
func (p *Progress) Add(nodes int, bytes int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += nodes
	p.bytes += bytes
	if time.Since(p.last) >= p.every {
		p.last = time.Now()
		p.render(false)
	}
}

// Done draws the final state of the root.
func (p *Progress) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.render(true)
}

func (p *Progress) render(final bool) {
	el := time.Since(p.start)
	rate := 0.0
	if el > 0 {
		rate = float64(p.done) / el.Seconds()
	}
	if !p.tty {
		p.log.Info("import progress", zap.String("root", p.root), zap.Int("nodes", p.done), zap.Int("total", p.total),
			zap.Int64("bytes", p.bytes), zap.Float64("keys_per_second", rate), zap.Bool("done", final))
		return
	}
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(p.done) / float64(p.total)
	}
	const width = 30
	fill := int(pct / 100 * width)
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = ' '
		if i < fill {
			bar[i] = '='
		}
	}
	fmt.Fprintf(p.w, "\r%s [%s] %3.0f%% %d/%d nodes, %s written, %.0f keys/s ", p.root, bar, pct, p.done, p.total,
		humanBytes(p.bytes), rate)
	if final {
		fmt.Fprintln(p.w)
	}
}
