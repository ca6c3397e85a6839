/* fm_gnuplot: one gnuplot child process, spoken to through pipes, with deadlines.
 *
 * gnuplot reads commands on one pipe; its stdout and stderr come back together on another, which
 * is read, never thrown away. An exchange (a figure) is: fm_gnuplot_begin, any number of
 * fm_gnuplot_send*, fm_gnuplot_end. The end sends a `print` of a marker line (print writes to
 * stderr) and waits for it: the exchange is complete when the marker arrives, and whatever gnuplot
 * said before it is about this exchange (fm_gnuplot_said). Writing and reading are interleaved,
 * so neither side can block the other with a full pipe, and a closed pipe is EPIPE, not SIGPIPE.
 *
 * Every wait has a deadline. A gnuplot that misses it, or a cancel_fd that becomes readable (the
 * binding's Ctrl-C), ends the exchange: the process is killed with its whole process group (a
 * wrapper script's children and gnuplot's `system` commands too) and reaped. A gnuplot that
 * exits is reaped; the caller may start another. Nothing here raises, prints or exits.
 *
 * The child runs with --default-settings (a user's ~/.gnuplot must not change figures) in its own
 * process group (Ctrl-C at a terminal reaches the caller, not the plotter), with SIGINT and SIGPIPE
 * at their defaults and no signal blocked. Not thread-safe: one thread uses one fm_gnuplot. */
#ifndef FM_GNUPLOT_H
#define FM_GNUPLOT_H

#include <stddef.h>
#include <sys/types.h>

enum {
  FM_GNUPLOT_OK = 0,
  FM_GNUPLOT_DEAD = 1,      /* gnuplot exited or closed its pipes (it has been reaped) */
  FM_GNUPLOT_TIMEOUT = 2,   /* the deadline passed (it has been killed and reaped) */
  FM_GNUPLOT_CANCELLED = 3, /* cancel_fd became readable (it has been killed and reaped) */
};

typedef struct fm_gnuplot {
  pid_t pid;         /* 0: not running */
  int in_fd, out_fd; /* gnuplot's stdin; its stdout + stderr */
  unsigned long serial;
  char marker[64]; /* the line that ends the current exchange */
  int got_marker, eof;
  char line[1024]; /* a line of gnuplot's output being assembled */
  size_t line_len;
  char said[8192]; /* what gnuplot said during the current exchange, one line each */
  size_t said_len;
  int said_cut;
  char out[65536]; /* commands not yet written */
  size_t out_len;
  int status; /* FM_GNUPLOT_* once sending or waiting failed */
  double deadline;
  int cancel_fd;
} fm_gnuplot;

/* The stopped state (call once before anything else). */
void fm_gnuplot_init(fm_gnuplot *g);

/* Spawns program ("gnuplot" is looked up on PATH; a name with a slash is run as it is) and checks
 * within timeout seconds that it answers as gnuplot 5.2 or newer. Fails with the process stopped:
 * "gnuplot not found: ..." (saying how to install it, or that `configured_by`, the environment
 * variable that named program, is wrong; NULL when it came from nowhere), "does not run as
 * gnuplot", "did not answer within N s", "is version N". */
int fm_gnuplot_start(fm_gnuplot *g, const char *program, const char *configured_by, double timeout);

/* Whether the process is running; one that died since (killed, crashed, closed its pipes) is
 * reaped and g stopped. Output that arrived between exchanges is dropped. */
int fm_gnuplot_running(fm_gnuplot *g);

/* Ends the process: closing its stdin makes gnuplot exit; if it has not within a second its
 * process group is killed. Always reaps it. Safe on a process that is not running. */
void fm_gnuplot_stop(fm_gnuplot *g);

/* Starts an exchange that must end within timeout seconds (and ends early once cancel_fd, if not
 * -1, is readable). Clears what gnuplot said. */
void fm_gnuplot_begin(fm_gnuplot *g, double timeout, int cancel_fd);
/* Queues commands (written as the buffer fills). After a failure they are dropped. */
void fm_gnuplot_send(fm_gnuplot *g, const char *s, size_t n);
void fm_gnuplot_sends(fm_gnuplot *g, const char *s);
/* Queues s[0..n) as a string literal (fm_gnuplot_quote.h; kind FM_GNUPLOT_TEXT or _FORMAT). */
void fm_gnuplot_send_quoted(fm_gnuplot *g, const char *s, size_t n, int kind);
/* Sends the marker, flushes and waits for it. Returns FM_GNUPLOT_OK, or the failure (the process
 * then stopped and reaped; what it said until then stays readable). */
int fm_gnuplot_end(fm_gnuplot *g);

/* What gnuplot said during the exchange as one line for a message: blank lines, the caret lines
 * under an echoed command and "line N:" prefixes dropped, an echoed command shown as "(in: ...)",
 * lines joined by "; ", "; ..." when some were cut. *only_warnings is set when every line is a
 * warning (and nothing was said is not "only warnings"). Returns the length, as snprintf. */
size_t fm_gnuplot_said(const fm_gnuplot *g, char *buf, size_t size, int *only_warnings);

#endif
