/* The logbook of a run: what the HF Trainer keeps in trainer_state.json (log_history, best metric and
 * checkpoint), written as metrics.jsonl lines as the run goes, a loss/learning-rate curve as SVG, and the
 * progress shown on the terminal. */
#ifndef HFT_LOGBOOK_H
#define HFT_LOGBOOK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kernels/kernels.h"

/* One log_history entry: named numbers, in insertion order. */
typedef struct log_entry {
    int n;
    char names[24][48];
    double values[24];
} log_entry;

void log_entry_set(log_entry *e, const char *name, double value);
double log_entry_get(const log_entry *e, const char *name, double missing);

typedef struct logbook {
    char *output_dir;
    log_entry *history;
    int n_history, cap_history;
    /* trainer_state.json fields */
    int64_t global_step, max_steps, logging_steps, eval_steps, save_steps, train_batch_size;
    double epoch, num_train_epochs, total_flos;
    int64_t num_input_tokens_seen;
    bool has_best;
    double best_metric;
    int64_t best_global_step;
    char best_model_checkpoint[1024];
    /* the terminal */
    bool tty;
    double started;
    int64_t progress_last_len;
    bool writes;
} logbook;

/* writes: false on ranks other than 0, which keep the history but write no file */
hft_status logbook_init(logbook *lb, const char *output_dir, bool writes);
void logbook_free(logbook *lb);
/* Appends an entry to the history and a line to output_dir/metrics.jsonl, and rewrites the SVG curve. */
hft_status logbook_add(logbook *lb, const log_entry *e);
/* trainer_state.json into `dir` (a checkpoint folder or the output folder), atomically. */
hft_status logbook_write_state(const logbook *lb, const char *dir);
/* Restores the history and counters from a checkpoint's trainer_state.json. */
hft_status logbook_read_state(logbook *lb, const char *dir);

/* The progress line: on a terminal one line redrawn in place, otherwise nothing (the logged lines suffice).
 */
void logbook_progress(logbook *lb, int64_t step, int64_t total, double loss, double lr, double grad_norm,
                      double tokens_per_s);
/* Ends the progress line before other output. */
void logbook_progress_clear(logbook *lb);
/* Prints a log entry as one plain line ("step 100/1000  loss 2.31  lr 4.5e-05 ..."). */
void logbook_print(logbook *lb, const log_entry *e, int64_t total);

#endif
