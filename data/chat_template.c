/* Chat templates: the subset of Jinja that tokenizer_config.json's chat_template strings use, rendered as
 * transformers renders them (jinja2 with trim_blocks and lstrip_blocks). Statements: if/elif/else, for (with
 * loop.index, index0, first, last, length, revindex), set (also ns.attr on a namespace). Expressions: string,
 * number, boolean and none literals, lists, names, .attr and [key] access, slices, calls of
 * raise_exception, namespace, strftime_now and string methods, filters (trim, length, tojson, upper, lower,
 * first, last, string, default), tests (defined, none, string, number), and the operators of arithmetic,
 * comparison, `in`, `~`, and/or/not and `x if c else y`. Values are cJSON nodes. A construct outside the
 * subset fails with its position. */
#include "data/data.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

/* ---------------------------------------------------------------- the parsed template */

typedef enum expr_kind {
    E_LIT,
    E_NAME,
    E_ATTR,
    E_ITEM,
    E_SLICE,
    E_CALL,
    E_FILTER,
    E_TEST,
    E_BIN,
    E_NOT,
    E_NEG,
    E_COND,
    E_LIST,
} expr_kind;

typedef struct expr {
    expr_kind kind;
    cJSON *lit;             /* E_LIT */
    char *name;             /* E_NAME, E_ATTR, E_FILTER, E_TEST; E_BIN: the operator */
    struct expr *a, *b, *c; /* operands; E_SLICE: object, start, stop; E_COND: then, cond, else */
    struct expr **args;     /* E_CALL, E_FILTER, E_LIST */
    char **kw;              /* keyword names of args (namespace(a=1)), NULL for positional */
    int n_args;
    bool negated; /* E_TEST: is not */
    long pos;     /* where it starts in the source, for messages */
} expr;

typedef enum node_kind { N_TEXT, N_OUT, N_IF, N_FOR, N_SET } node_kind;

typedef struct node {
    node_kind kind;
    char *text;            /* N_TEXT */
    expr *e;               /* N_OUT, N_SET value, N_FOR iterable */
    char *var, *attr;      /* N_FOR loop variable; N_SET target (var, or var.attr) */
    expr **conds;          /* N_IF: conditions of if and elifs */
    struct node ***bodies; /* N_IF: a body per condition, then the else body; N_FOR: [0] body */
    int *body_len, n_conds;
} node;

struct hft_chat_template {
    node **nodes;
    int n;
    char *name;
    char *src; /* for the line and column of an error while rendering */
};

/* ---------------------------------------------------------------- lexing */

typedef enum tok_kind {
    T_TEXT,
    T_OUT_OPEN,
    T_STMT_OPEN,
    T_CLOSE,
    T_NAME,
    T_STR,
    T_NUM,
    T_OP,
    T_END
} tok_kind;

typedef struct tok {
    tok_kind kind;
    char *s; /* T_TEXT, T_NAME, T_STR, T_OP */
    double num;
    long pos; /* offset in the source, for messages */
} tok;

typedef struct lexer {
    const char *src, *name;
    tok *toks;
    int n, cap;
    char err[512];
} lexer;

static bool push(lexer *L, tok t) {
    if (L->n == L->cap) {
        int cap = L->cap ? 2 * L->cap : 256;
        tok *g = realloc(L->toks, (size_t)cap * sizeof *g);
        if (!g) return false;
        L->toks = g;
        L->cap = cap;
    }
    L->toks[L->n++] = t;
    return true;
}

static bool fail_at(lexer *L, long pos, const char *what) {
    int line = 1, col = 1;
    for (long i = 0; i < pos && L->src[i]; i++) col = L->src[i] == '\n' ? (line++, 1) : col + 1;
    snprintf(L->err, sizeof L->err, "%s: line %d, column %d: %s", L->name, line, col, what);
    return false;
}

/* Text up to the next tag, with Jinja's trim_blocks / lstrip_blocks / '-' markers applied. */
static bool lex(lexer *L) {
    const char *s = L->src;
    long i = 0, n = (long)strlen(s);
    bool trim_next = false, newline_after_block = false;
    while (i < n) {
        long start = i;
        const char *open = NULL;
        long j = i;
        for (; j < n; j++)
            if (s[j] == '{' && j + 1 < n && (s[j + 1] == '{' || s[j + 1] == '%' || s[j + 1] == '#')) {
                open = s + j;
                break;
            }
        long end = j; /* text [start, end) */
        if (newline_after_block && start < end && s[start] == '\n')
            start++; /* trim_blocks */
        else if (newline_after_block && start + 1 < end && s[start] == '\r' && s[start + 1] == '\n')
            start += 2;
        if (trim_next)
            while (start < end && isspace((unsigned char)s[start])) start++;
        bool minus = open && j + 2 < n && s[j + 2] == '-';
        if (open && minus)
            while (end > start && isspace((unsigned char)s[end - 1])) end--;
        else if (open && (open[1] == '%' || open[1] == '#')) { /* lstrip_blocks: blanks from the line start */
            long k = end;
            while (k > start && (s[k - 1] == ' ' || s[k - 1] == '\t')) k--;
            if (k == start ? (start == 0 || s[start - 1] == '\n') : s[k - 1] == '\n') end = k;
        }
        if (end > start && !push(L, (tok){T_TEXT, strndup(s + start, (size_t)(end - start)), 0, start}))
            return false;
        if (!open) break;
        char kind = open[1];
        i = j + 2 + (minus ? 1 : 0);
        if (kind == '#') {
            const char *c = strstr(s + i, "#}");
            if (!c) return fail_at(L, j, "a comment is not closed");
            trim_next = c > s + i && c[-1] == '-';
            newline_after_block = true;
            i = (long)(c - s) + 2;
            continue;
        }
        if (!push(L, (tok){kind == '{' ? T_OUT_OPEN : T_STMT_OPEN, NULL, 0, j})) return false;
        const char *close = kind == '{' ? "}}" : "%}";
        for (;;) {
            while (i < n && isspace((unsigned char)s[i])) i++;
            if (i >= n) return fail_at(L, j, kind == '{' ? "'{{' is not closed" : "'{%' is not closed");
            if ((s[i] == '-' && i + 2 < n && strncmp(s + i + 1, close, 2) == 0) ||
                strncmp(s + i, close, 2) == 0) {
                trim_next = s[i] == '-';
                i += trim_next ? 3 : 2;
                newline_after_block = kind == '%';
                if (!push(L, (tok){T_CLOSE, NULL, 0, i})) return false;
                break;
            }
            long p = i;
            if (isalpha((unsigned char)s[i]) || s[i] == '_') {
                while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '_')) i++;
                if (!push(L, (tok){T_NAME, strndup(s + p, (size_t)(i - p)), 0, p})) return false;
            } else if (isdigit((unsigned char)s[i])) {
                char *e;
                double v = strtod(s + i, &e);
                i = (long)(e - s);
                if (!push(L, (tok){T_NUM, NULL, v, p})) return false;
            } else if (s[i] == '\'' || s[i] == '"') {
                char q = s[i++];
                char *buf = malloc((size_t)(n - i + 1));
                size_t k = 0;
                while (i < n && s[i] != q) {
                    if (s[i] == '\\' && i + 1 < n) {
                        i++;
                        buf[k++] = s[i] == 'n' ? '\n' : s[i] == 't' ? '\t' : s[i] == 'r' ? '\r' : s[i];
                    } else {
                        buf[k++] = s[i];
                    }
                    i++;
                }
                if (i >= n) return free(buf), fail_at(L, p, "a string is not closed");
                i++;
                buf[k] = '\0';
                if (!push(L, (tok){T_STR, buf, 0, p})) return false;
            } else {
                static const char *ops[] = {"==", "!=", "<=", ">=", "//", "**", "(", ")", "[",
                                            "]",  "{",  "}",  ".",  ",",  ":",  "|", "+", "-",
                                            "*",  "/",  "%",  "~",  "<",  ">",  "=", NULL};
                int o = 0;
                while (ops[o] && strncmp(s + i, ops[o], strlen(ops[o])) != 0) o++;
                if (!ops[o]) return fail_at(L, i, "an unexpected character");
                i += (long)strlen(ops[o]);
                if (!push(L, (tok){T_OP, strdup(ops[o]), 0, p})) return false;
            }
        }
    }
    return push(L, (tok){T_END, NULL, 0, n});
}

/* ---------------------------------------------------------------- parsing */

typedef struct parser {
    lexer *L;
    int at;
    long pos; /* of the token last looked at: where the next expression made starts */
} parser;

static tok *peek(parser *P) {
    P->pos = P->L->toks[P->at].pos;
    return &P->L->toks[P->at];
}
static bool is_op(parser *P, const char *op) {
    return peek(P)->kind == T_OP && strcmp(peek(P)->s, op) == 0;
}
static bool is_name(parser *P, const char *name) {
    return peek(P)->kind == T_NAME && strcmp(peek(P)->s, name) == 0;
}
static bool expect_op(parser *P, const char *op) {
    if (is_op(P, op)) return P->at++, true;
    char m[80];
    snprintf(m, sizeof m, "expected '%s'", op);
    return fail_at(P->L, peek(P)->pos, m);
}

static expr *new_expr(parser *P, expr_kind k) {
    expr *e = calloc(1, sizeof *e);
    if (e) e->kind = k, e->pos = P->pos;
    return e;
}

static void free_expr(expr *e) {
    if (!e) return;
    cJSON_Delete(e->lit);
    free(e->name);
    free_expr(e->a), free_expr(e->b), free_expr(e->c);
    for (int i = 0; i < e->n_args; i++) free_expr(e->args[i]), free(e->kw ? e->kw[i] : NULL);
    free(e->args), free(e->kw);
    free(e);
}

static expr *parse_expr(parser *P);

static bool parse_args(parser *P, expr *e, const char *close) {
    while (!is_op(P, close)) {
        char *kw = NULL;
        if (peek(P)->kind == T_NAME && P->L->toks[P->at + 1].kind == T_OP &&
            strcmp(P->L->toks[P->at + 1].s, "=") == 0) {
            kw = strdup(peek(P)->s);
            P->at += 2;
        }
        expr *a = parse_expr(P);
        if (!a) return free(kw), false;
        e->args = realloc(e->args, sizeof *e->args * (size_t)(e->n_args + 1));
        e->kw = realloc(e->kw, sizeof *e->kw * (size_t)(e->n_args + 1));
        e->kw[e->n_args] = kw;
        e->args[e->n_args++] = a;
        if (!is_op(P, ",")) break;
        P->at++;
    }
    return expect_op(P, close);
}

static expr *parse_primary(parser *P) {
    tok *t = peek(P);
    expr *e = NULL;
    if (t->kind == T_STR) {
        e = new_expr(P, E_LIT);
        e->lit = cJSON_CreateString(t->s);
        P->at++;
    } else if (t->kind == T_NUM) {
        e = new_expr(P, E_LIT);
        e->lit = cJSON_CreateNumber(t->num);
        P->at++;
    } else if (t->kind == T_NAME) {
        P->at++;
        e = new_expr(P, E_LIT);
        if (strcmp(t->s, "true") == 0 || strcmp(t->s, "True") == 0)
            e->lit = cJSON_CreateTrue();
        else if (strcmp(t->s, "false") == 0 || strcmp(t->s, "False") == 0)
            e->lit = cJSON_CreateFalse();
        else if (strcmp(t->s, "none") == 0 || strcmp(t->s, "None") == 0)
            e->lit = cJSON_CreateNull();
        else
            e->kind = E_NAME, e->name = strdup(t->s);
    } else if (is_op(P, "(")) {
        P->at++;
        e = parse_expr(P);
        if (e && !expect_op(P, ")")) return free_expr(e), NULL;
    } else if (is_op(P, "[")) {
        P->at++;
        e = new_expr(P, E_LIST);
        if (!parse_args(P, e, "]")) return free_expr(e), NULL;
    } else {
        fail_at(P->L, t->pos, "expected a value");
        return NULL;
    }
    for (;;) { /* postfix: .attr, [key], [a:b], (args) */
        if (is_op(P, ".")) {
            P->at++;
            if (peek(P)->kind != T_NAME)
                return fail_at(P->L, peek(P)->pos, "expected a name after '.'"), free_expr(e), NULL;
            expr *x = new_expr(P, E_ATTR);
            x->a = e, x->name = strdup(peek(P)->s);
            P->at++;
            e = x;
        } else if (is_op(P, "[")) {
            P->at++;
            expr *lo = NULL, *hi = NULL;
            bool slice = false;
            if (!is_op(P, ":")) lo = parse_expr(P);
            if (is_op(P, ":")) {
                slice = true;
                P->at++;
                if (!is_op(P, "]")) hi = parse_expr(P);
            }
            if (!expect_op(P, "]")) return free_expr(lo), free_expr(hi), free_expr(e), NULL;
            expr *x = new_expr(P, slice ? E_SLICE : E_ITEM);
            x->a = e, x->b = lo, x->c = hi;
            e = x;
        } else if (is_op(P, "(")) {
            P->at++;
            expr *x = new_expr(P, E_CALL);
            x->a = e;
            if (!parse_args(P, x, ")")) return free_expr(x), NULL;
            e = x;
        } else {
            return e;
        }
    }
}

static expr *parse_filtered(parser *P) {
    expr *e = parse_primary(P);
    while (e && is_op(P, "|")) {
        P->at++;
        if (peek(P)->kind != T_NAME)
            return fail_at(P->L, peek(P)->pos, "expected a filter name"), free_expr(e), NULL;
        expr *f = new_expr(P, E_FILTER);
        f->a = e, f->name = strdup(peek(P)->s);
        P->at++;
        if (is_op(P, "(")) {
            P->at++;
            if (!parse_args(P, f, ")")) return free_expr(f), NULL;
        }
        e = f;
    }
    return e;
}

static expr *parse_unary(parser *P) {
    if (is_op(P, "-")) {
        P->at++;
        expr *e = new_expr(P, E_NEG);
        e->a = parse_unary(P);
        return e->a ? e : (free_expr(e), NULL);
    }
    return parse_filtered(P);
}

static expr *bin(parser *P, const char *op, expr *a, expr *b, long pos) {
    expr *e = new_expr(P, E_BIN);
    e->name = strdup(op), e->a = a, e->b = b, e->pos = pos;
    return e;
}

static expr *parse_mul(parser *P) {
    expr *e = parse_unary(P);
    while (e && (is_op(P, "*") || is_op(P, "/") || is_op(P, "%") || is_op(P, "//"))) {
        const char *op = peek(P)->s;
        long pos = peek(P)->pos;
        P->at++;
        expr *r = parse_unary(P);
        if (!r) return free_expr(e), NULL;
        e = bin(P, op, e, r, pos);
    }
    return e;
}

static expr *parse_add(parser *P) {
    expr *e = parse_mul(P);
    while (e && (is_op(P, "+") || is_op(P, "-") || is_op(P, "~"))) {
        const char *op = peek(P)->s;
        long pos = peek(P)->pos;
        P->at++;
        expr *r = parse_mul(P);
        if (!r) return free_expr(e), NULL;
        e = bin(P, op, e, r, pos);
    }
    return e;
}

static expr *parse_cmp(parser *P) {
    expr *e = parse_add(P);
    for (;;) {
        if (!e) return NULL;
        const char *op = NULL;
        long pos = peek(P)->pos;
        if (is_op(P, "==") || is_op(P, "!=") || is_op(P, "<") || is_op(P, ">") || is_op(P, "<=") ||
            is_op(P, ">="))
            op = peek(P)->s, P->at++;
        else if (is_name(P, "in"))
            op = "in", P->at++;
        else if (is_name(P, "not") && P->L->toks[P->at + 1].kind == T_NAME &&
                 strcmp(P->L->toks[P->at + 1].s, "in") == 0)
            op = "not in", P->at += 2;
        else if (is_name(P, "is")) {
            P->at++;
            expr *t = new_expr(P, E_TEST);
            if (is_name(P, "not")) t->negated = true, P->at++;
            if (peek(P)->kind != T_NAME)
                return fail_at(P->L, peek(P)->pos, "expected a test name"), free_expr(t), free_expr(e), NULL;
            t->name = strdup(peek(P)->s);
            P->at++;
            t->a = e;
            e = t;
            continue;
        } else
            return e;
        expr *r = parse_add(P);
        if (!r) return free_expr(e), NULL;
        e = bin(P, op, e, r, pos);
    }
}

static expr *parse_not(parser *P) {
    if (is_name(P, "not")) {
        P->at++;
        expr *e = new_expr(P, E_NOT);
        e->a = parse_not(P);
        return e->a ? e : (free_expr(e), NULL);
    }
    return parse_cmp(P);
}

static expr *parse_and(parser *P) {
    expr *e = parse_not(P);
    while (e && is_name(P, "and")) {
        long pos = peek(P)->pos;
        P->at++;
        expr *r = parse_not(P);
        if (!r) return free_expr(e), NULL;
        e = bin(P, "and", e, r, pos);
    }
    return e;
}

static expr *parse_or(parser *P) {
    expr *e = parse_and(P);
    while (e && is_name(P, "or")) {
        long pos = peek(P)->pos;
        P->at++;
        expr *r = parse_and(P);
        if (!r) return free_expr(e), NULL;
        e = bin(P, "or", e, r, pos);
    }
    return e;
}

static expr *parse_expr(parser *P) {
    expr *e = parse_or(P);
    if (e && is_name(P, "if")) { /* x if c else y */
        P->at++;
        expr *x = new_expr(P, E_COND);
        x->a = e;
        x->b = parse_or(P);
        if (!x->b) return free_expr(x), NULL;
        if (is_name(P, "else")) {
            P->at++;
            x->c = parse_expr(P);
            if (!x->c) return free_expr(x), NULL;
        }
        e = x;
    }
    return e;
}

static void free_nodes(node **nodes, int n);

static void free_node(node *d) {
    if (!d) return;
    free(d->text), free(d->var), free(d->attr);
    free_expr(d->e);
    for (int i = 0; i < d->n_conds; i++) free_expr(d->conds[i]);
    int bodies = d->kind == N_IF ? d->n_conds + 1 : d->kind == N_FOR ? 1 : 0;
    for (int i = 0; i < bodies; i++) free_nodes(d->bodies[i], d->body_len[i]);
    free(d->conds), free(d->bodies), free(d->body_len);
    free(d);
}

static void free_nodes(node **nodes, int n) {
    for (int i = 0; i < n; i++) free_node(nodes[i]);
    free(nodes);
}

/* Nodes until one of the statement names in `stops` (left unconsumed, after its '{%'), or the end. */
static bool parse_body(parser *P, const char *const *stops, node ***out, int *n_out, const char **stopped) {
    node **nodes = NULL;
    int n = 0;
    *stopped = NULL;
    for (;;) {
        tok *t = peek(P);
        node *d = NULL;
        if (t->kind == T_END) {
            if (stops)
                return free_nodes(nodes, n),
                       fail_at(P->L, t->pos, "a block is not closed (endif or endfor missing)");
            break;
        }
        if (t->kind == T_TEXT) {
            d = calloc(1, sizeof *d);
            d->kind = N_TEXT, d->text = strdup(t->s);
            P->at++;
        } else if (t->kind == T_OUT_OPEN) {
            P->at++;
            d = calloc(1, sizeof *d);
            d->kind = N_OUT;
            d->e = parse_expr(P);
            if (!d->e || peek(P)->kind != T_CLOSE) {
                if (d->e) fail_at(P->L, peek(P)->pos, "expected '}}'");
                free_node(d), free_nodes(nodes, n);
                return false;
            }
            P->at++;
        } else if (t->kind == T_STMT_OPEN) {
            tok *kw = &P->L->toks[P->at + 1];
            if (kw->kind != T_NAME)
                return free_nodes(nodes, n), fail_at(P->L, kw->pos, "expected a statement");
            for (int s = 0; stops && stops[s]; s++)
                if (strcmp(kw->s, stops[s]) == 0) {
                    *stopped = stops[s];
                    *out = nodes, *n_out = n;
                    P->at += 2; /* past '{%' and the keyword */
                    return true;
                }
            P->at += 2;
            d = calloc(1, sizeof *d);
            if (strcmp(kw->s, "if") == 0) {
                d->kind = N_IF;
                for (;;) {
                    expr *c = parse_expr(P);
                    if (!c || peek(P)->kind != T_CLOSE) {
                        if (c) fail_at(P->L, peek(P)->pos, "expected '%}'");
                        free_expr(c), free_node(d), free_nodes(nodes, n);
                        return false;
                    }
                    P->at++;
                    d->conds = realloc(d->conds, sizeof *d->conds * (size_t)(d->n_conds + 1));
                    d->bodies = realloc(d->bodies, sizeof *d->bodies * (size_t)(d->n_conds + 2));
                    d->body_len = realloc(d->body_len, sizeof *d->body_len * (size_t)(d->n_conds + 2));
                    d->conds[d->n_conds] = c;
                    const char *stop;
                    static const char *const if_stops[] = {"elif", "else", "endif", NULL};
                    if (!parse_body(P, if_stops, &d->bodies[d->n_conds], &d->body_len[d->n_conds], &stop)) {
                        d->bodies[d->n_conds] = NULL, d->body_len[d->n_conds] = 0, d->n_conds++;
                        d->bodies[d->n_conds] = NULL, d->body_len[d->n_conds] = 0;
                        free_node(d), free_nodes(nodes, n);
                        return false;
                    }
                    d->n_conds++;
                    d->bodies[d->n_conds] = NULL, d->body_len[d->n_conds] = 0;
                    if (strcmp(stop, "elif") == 0) continue;
                    if (strcmp(stop, "else") == 0) {
                        static const char *const else_stops[] = {"endif", NULL};
                        if (peek(P)->kind != T_CLOSE)
                            return fail_at(P->L, peek(P)->pos, "expected '%}'"), free_node(d),
                                   free_nodes(nodes, n), false;
                        P->at++;
                        if (!parse_body(P, else_stops, &d->bodies[d->n_conds], &d->body_len[d->n_conds],
                                        &stop))
                            return free_node(d), free_nodes(nodes, n), false;
                    }
                    if (peek(P)->kind != T_CLOSE)
                        return fail_at(P->L, peek(P)->pos, "expected '%}'"), free_node(d),
                               free_nodes(nodes, n), false;
                    P->at++;
                    break;
                }
            } else if (strcmp(kw->s, "for") == 0) {
                d->kind = N_FOR;
                if (peek(P)->kind != T_NAME)
                    return fail_at(P->L, peek(P)->pos, "expected a loop variable"), free_node(d),
                           free_nodes(nodes, n), false;
                d->var = strdup(peek(P)->s);
                P->at++;
                if (!is_name(P, "in"))
                    return fail_at(P->L, peek(P)->pos, "expected 'in'"), free_node(d), free_nodes(nodes, n),
                           false;
                P->at++;
                d->e = parse_expr(P);
                if (!d->e || peek(P)->kind != T_CLOSE)
                    return (d->e ? fail_at(P->L, peek(P)->pos,
                                           "expected '%}' (loop filters and recursion are not supported)")
                                 : false),
                           free_node(d), free_nodes(nodes, n), false;
                P->at++;
                d->bodies = calloc(1, sizeof *d->bodies);
                d->body_len = calloc(1, sizeof *d->body_len);
                const char *stop;
                static const char *const for_stops[] = {"endfor", "else", NULL};
                if (!parse_body(P, for_stops, &d->bodies[0], &d->body_len[0], &stop))
                    return free_node(d), free_nodes(nodes, n), false;
                if (strcmp(stop, "else") == 0)
                    return fail_at(P->L, peek(P)->pos, "'for ... else' is not supported"), free_node(d),
                           free_nodes(nodes, n), false;
                if (peek(P)->kind != T_CLOSE)
                    return fail_at(P->L, peek(P)->pos, "expected '%}'"), free_node(d), free_nodes(nodes, n),
                           false;
                P->at++;
            } else if (strcmp(kw->s, "set") == 0) {
                d->kind = N_SET;
                if (peek(P)->kind != T_NAME)
                    return fail_at(P->L, peek(P)->pos, "expected a name to set"), free_node(d),
                           free_nodes(nodes, n), false;
                d->var = strdup(peek(P)->s);
                P->at++;
                if (is_op(P, ".")) {
                    P->at++;
                    if (peek(P)->kind != T_NAME)
                        return fail_at(P->L, peek(P)->pos, "expected an attribute"), free_node(d),
                               free_nodes(nodes, n), false;
                    d->attr = strdup(peek(P)->s);
                    P->at++;
                }
                if (!expect_op(P, "=")) return free_node(d), free_nodes(nodes, n), false;
                d->e = parse_expr(P);
                if (!d->e || peek(P)->kind != T_CLOSE)
                    return (d->e ? fail_at(P->L, peek(P)->pos, "expected '%}'") : false), free_node(d),
                           free_nodes(nodes, n), false;
                P->at++;
            } else {
                char m[128];
                snprintf(m, sizeof m, "the statement '%s' is not supported", kw->s);
                free(d);
                free_nodes(nodes, n);
                return fail_at(P->L, kw->pos, m);
            }
        } else {
            return free_nodes(nodes, n), fail_at(P->L, t->pos, "unexpected '%}' or '}}'");
        }
        nodes = realloc(nodes, sizeof *nodes * (size_t)(n + 1));
        nodes[n++] = d;
    }
    *out = nodes, *n_out = n;
    return true;
}

hft_status hft_chat_template_parse(const char *source, const char *name, hft_chat_template **out) {
    *out = NULL;
    lexer L = {.src = source, .name = name ? name : "chat_template"};
    hft_chat_template *t = calloc(1, sizeof *t);
    bool ok = t && lex(&L);
    parser P = {.L = &L};
    const char *stop;
    if (ok) ok = parse_body(&P, NULL, &t->nodes, &t->n, &stop);
    hft_status st = ok ? HFT_OK : hft_error(HFT_EFORMAT, "%s", L.err[0] ? L.err : "out of memory");
    for (int i = 0; i < L.n; i++) free(L.toks[i].s);
    free(L.toks);
    if (st != HFT_OK) {
        free(t);
        return st;
    }
    t->name = strdup(L.name);
    t->src = strdup(source);
    *out = t;
    return HFT_OK;
}

void hft_chat_template_free(hft_chat_template *t) {
    if (!t) return;
    free_nodes(t->nodes, t->n);
    free(t->name);
    free(t->src);
    free(t);
}

/* ---------------------------------------------------------------- rendering */

typedef struct scope {
    cJSON *vars; /* an object: name -> value (owned) */
    struct scope *up;
} scope;

typedef struct render {
    char *out;
    size_t len, cap;
    char err[512];
    const char *name, *src;
    long pos; /* of the expression being evaluated */
} render;

static void emit(render *R, const char *s, size_t n) {
    if (R->len + n + 1 > R->cap) {
        size_t cap = (R->len + n + 1) * 2;
        char *g = realloc(R->out, cap);
        if (!g) return;
        R->out = g, R->cap = cap;
    }
    memcpy(R->out + R->len, s, n);
    R->len += n;
    R->out[R->len] = '\0';
}

/* `what` with its one '%s' replaced by `a`, at the line and column of the expression being evaluated. */
static bool rfail(render *R, const char *what, const char *a) {
    if (!R->err[0]) {
        int line = 1, col = 1;
        for (long i = 0; i < R->pos && R->src && R->src[i]; i++)
            col = R->src[i] == '\n' ? (line++, 1) : col + 1;
        const char *at = strstr(what, "%s");
        snprintf(R->err, sizeof R->err, "%s: line %d, column %d: %.*s%s%s", R->name, line, col,
                 at ? (int)(at - what) : (int)strlen(what), what, at ? a : "", at ? at + 2 : "");
    }
    return false;
}

static cJSON *lookup(scope *S, const char *name) {
    for (; S; S = S->up) {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(S->vars, name);
        if (v) return v;
    }
    return NULL;
}

static bool truthy(const cJSON *v) {
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v)) return false;
    if (cJSON_IsNumber(v)) return v->valuedouble != 0;
    if (cJSON_IsString(v)) return v->valuestring[0] != '\0';
    if (cJSON_IsArray(v) || cJSON_IsObject(v)) return v->child != NULL;
    return true;
}

/* A value as Jinja prints it. */
static char *to_string(const cJSON *v) {
    if (!v || cJSON_IsNull(v)) return strdup("None");
    if (cJSON_IsString(v)) return strdup(v->valuestring);
    if (cJSON_IsTrue(v)) return strdup("True");
    if (cJSON_IsFalse(v)) return strdup("False");
    if (cJSON_IsNumber(v)) {
        char b[64];
        if (v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 1e15)
            snprintf(b, sizeof b, "%.0f", v->valuedouble);
        else
            snprintf(b, sizeof b, "%.17g", v->valuedouble);
        return strdup(b);
    }
    return cJSON_PrintUnformatted(v);
}

static cJSON *eval(render *R, scope *S, const expr *e);

static cJSON *str_value(char *s) { /* takes s */
    cJSON *v = cJSON_CreateString(s ? s : "");
    free(s);
    return v;
}

static char *strip_chars(const char *s, bool left, bool right) {
    const char *a = s, *b = s + strlen(s);
    if (left)
        while (*a && isspace((unsigned char)*a)) a++;
    if (right)
        while (b > a && isspace((unsigned char)b[-1])) b--;
    return strndup(a, (size_t)(b - a));
}

static cJSON *apply_filter(render *R, scope *S, const expr *e, cJSON *v) {
    const char *f = e->name;
    if (strcmp(f, "trim") == 0)
        return str_value(strip_chars(cJSON_IsString(v) ? v->valuestring : "", true, true));
    if (strcmp(f, "length") == 0 || strcmp(f, "count") == 0)
        return cJSON_CreateNumber(cJSON_IsString(v) ? (double)strlen(v->valuestring)
                                                    : (double)cJSON_GetArraySize(v));
    if (strcmp(f, "tojson") == 0) return str_value(cJSON_PrintUnformatted(v));
    if (strcmp(f, "string") == 0) return str_value(to_string(v));
    if (strcmp(f, "upper") == 0 || strcmp(f, "lower") == 0) {
        char *s = to_string(v);
        for (char *c = s; *c; c++)
            *c = (char)(f[0] == 'u' ? toupper((unsigned char)*c) : tolower((unsigned char)*c));
        return str_value(s);
    }
    if (strcmp(f, "first") == 0 || strcmp(f, "last") == 0) {
        int n = cJSON_GetArraySize(v);
        cJSON *x = n ? cJSON_GetArrayItem(v, f[0] == 'f' ? 0 : n - 1) : NULL;
        return x ? cJSON_Duplicate(x, true) : cJSON_CreateNull();
    }
    if (strcmp(f, "default") == 0 || strcmp(f, "d") == 0) {
        if (v && !cJSON_IsNull(v)) return cJSON_Duplicate(v, true);
        return e->n_args ? eval(R, S, e->args[0]) : cJSON_CreateString("");
    }
    rfail(R, "the filter '%s' is not supported", f);
    return NULL;
}

static cJSON *call_method(render *R, scope *S, const expr *call, const cJSON *obj, const char *m) {
    cJSON *args[4] = {NULL};
    int n = call->n_args < 4 ? call->n_args : 4;
    for (int i = 0; i < n; i++)
        if (!(args[i] = eval(R, S, call->args[i]))) {
            for (int j = 0; j < i; j++) cJSON_Delete(args[j]);
            return NULL;
        }
    cJSON *r = NULL;
    if (cJSON_IsString(obj)) {
        const char *s = obj->valuestring;
        if (strcmp(m, "strip") == 0)
            r = str_value(strip_chars(s, true, true));
        else if (strcmp(m, "lstrip") == 0)
            r = str_value(strip_chars(s, true, false));
        else if (strcmp(m, "rstrip") == 0)
            r = str_value(strip_chars(s, false, true));
        else if (strcmp(m, "upper") == 0 || strcmp(m, "lower") == 0 || strcmp(m, "title") == 0) {
            char *c = strdup(s);
            bool start = true;
            for (char *p = c; *p; p++) {
                if (m[0] == 'u')
                    *p = (char)toupper((unsigned char)*p);
                else if (m[0] == 'l')
                    *p = (char)tolower((unsigned char)*p);
                else
                    *p = (char)(start ? toupper((unsigned char)*p) : tolower((unsigned char)*p));
                start = !isalpha((unsigned char)*p);
            }
            r = str_value(c);
        } else if ((strcmp(m, "startswith") == 0 || strcmp(m, "endswith") == 0) && n == 1 &&
                   cJSON_IsString(args[0])) {
            size_t ls = strlen(s), lp = strlen(args[0]->valuestring);
            bool ok = lp <= ls && strncmp(m[0] == 's' ? s : s + ls - lp, args[0]->valuestring, lp) == 0;
            r = cJSON_CreateBool(ok);
        }
    } else if (cJSON_IsObject(obj)) {
        if (strcmp(m, "get") == 0 && n >= 1 && cJSON_IsString(args[0])) {
            cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, args[0]->valuestring);
            r = x ? cJSON_Duplicate(x, true) : n > 1 ? cJSON_Duplicate(args[1], true) : cJSON_CreateNull();
        } else if (strcmp(m, "items") == 0) {
            r = cJSON_CreateArray();
            for (cJSON *c = obj->child; c; c = c->next) {
                cJSON *pair = cJSON_CreateArray();
                cJSON_AddItemToArray(pair, cJSON_CreateString(c->string));
                cJSON_AddItemToArray(pair, cJSON_Duplicate(c, true));
                cJSON_AddItemToArray(r, pair);
            }
        }
    }
    for (int i = 0; i < n; i++) cJSON_Delete(args[i]);
    if (!r) rfail(R, "the method '%s' is not supported on this value", m);
    return r;
}

static double num(const cJSON *v) {
    return cJSON_IsNumber(v) ? v->valuedouble : cJSON_IsTrue(v) ? 1 : 0;
}

static bool equal(const cJSON *a, const cJSON *b) {
    if ((cJSON_IsNumber(a) || cJSON_IsBool(a)) && (cJSON_IsNumber(b) || cJSON_IsBool(b)))
        return num(a) == num(b);
    return cJSON_Compare(a, b, true);
}

static cJSON *eval_bin(render *R, scope *S, const expr *e) {
    const char *op = e->name;
    if (strcmp(op, "and") == 0 || strcmp(op, "or") == 0) { /* short-circuit, the deciding value returned */
        cJSON *a = eval(R, S, e->a);
        if (!a) return NULL;
        if (truthy(a) == (op[0] == 'o')) return a;
        cJSON_Delete(a);
        return eval(R, S, e->b);
    }
    cJSON *a = eval(R, S, e->a), *b = a ? eval(R, S, e->b) : NULL, *r = NULL;
    if (!a || !b) return cJSON_Delete(a), cJSON_Delete(b), NULL;
    R->pos = e->pos;
    if (strcmp(op, "~") == 0 || (strcmp(op, "+") == 0 && cJSON_IsString(a) && cJSON_IsString(b))) {
        char *x = to_string(a), *y = to_string(b);
        size_t lx = strlen(x), ly = strlen(y);
        char *c = malloc(lx + ly + 1);
        memcpy(c, x, lx), memcpy(c + lx, y, ly + 1);
        r = str_value(c);
        free(x), free(y);
    } else if (strcmp(op, "+") == 0 && cJSON_IsArray(a) && cJSON_IsArray(b)) {
        r = cJSON_Duplicate(a, true);
        for (cJSON *c = b->child; c; c = c->next) cJSON_AddItemToArray(r, cJSON_Duplicate(c, true));
    } else if (strcmp(op, "==") == 0 || strcmp(op, "!=") == 0) {
        r = cJSON_CreateBool(equal(a, b) == (op[0] == '='));
    } else if (strcmp(op, "in") == 0 || strcmp(op, "not in") == 0) {
        bool found = false;
        if (cJSON_IsString(b) && cJSON_IsString(a))
            found = strstr(b->valuestring, a->valuestring) != NULL;
        else if (cJSON_IsArray(b))
            for (cJSON *c = b->child; c && !found; c = c->next) found = equal(a, c);
        else if (cJSON_IsObject(b) && cJSON_IsString(a))
            found = cJSON_GetObjectItemCaseSensitive(b, a->valuestring) != NULL;
        r = cJSON_CreateBool(found == (op[0] == 'i'));
    } else if (cJSON_IsString(a) && cJSON_IsString(b) && op[0] == '<') {
        int c = strcmp(a->valuestring, b->valuestring);
        r = cJSON_CreateBool(op[1] == '=' ? c <= 0 : c < 0);
    } else if (cJSON_IsString(a) && cJSON_IsString(b) && op[0] == '>') {
        int c = strcmp(a->valuestring, b->valuestring);
        r = cJSON_CreateBool(op[1] == '=' ? c >= 0 : c > 0);
    } else if ((cJSON_IsNumber(a) || cJSON_IsBool(a)) && (cJSON_IsNumber(b) || cJSON_IsBool(b))) {
        double x = num(a), y = num(b);
        if (strcmp(op, "<") == 0)
            r = cJSON_CreateBool(x < y);
        else if (strcmp(op, ">") == 0)
            r = cJSON_CreateBool(x > y);
        else if (strcmp(op, "<=") == 0)
            r = cJSON_CreateBool(x <= y);
        else if (strcmp(op, ">=") == 0)
            r = cJSON_CreateBool(x >= y);
        else if (strcmp(op, "+") == 0)
            r = cJSON_CreateNumber(x + y);
        else if (strcmp(op, "-") == 0)
            r = cJSON_CreateNumber(x - y);
        else if (strcmp(op, "*") == 0)
            r = cJSON_CreateNumber(x * y);
        else if (strcmp(op, "/") == 0)
            r = cJSON_CreateNumber(x / y);
        else if (strcmp(op, "//") == 0)
            r = cJSON_CreateNumber(floor(x / y));
        else if (strcmp(op, "%") == 0)
            r = cJSON_CreateNumber(x - y * floor(x / y));
    } else if (strcmp(op, "*") == 0 && cJSON_IsString(a) && cJSON_IsNumber(b)) {
        size_t l = strlen(a->valuestring);
        int k = b->valuedouble > 0 ? (int)b->valuedouble : 0;
        char *c = malloc(l * (size_t)k + 1);
        for (int i = 0; i < k; i++) memcpy(c + l * (size_t)i, a->valuestring, l);
        c[l * (size_t)k] = '\0';
        r = str_value(c);
    }
    cJSON_Delete(a), cJSON_Delete(b);
    if (!r) rfail(R, "the operator '%s' is not supported on these values", op);
    return r;
}

static cJSON *eval(render *R, scope *S, const expr *e) {
    if (R->err[0]) return NULL;
    R->pos = e->pos;
    switch (e->kind) {
    case E_LIT:
        return cJSON_Duplicate(e->lit, true);
    case E_NAME: {
        cJSON *v = lookup(S, e->name);
        return v ? cJSON_Duplicate(v, true) : cJSON_CreateNull(); /* undefined prints as "" in jinja2 */
    }
    case E_ATTR:
    case E_ITEM: {
        cJSON *o = eval(R, S, e->a), *k = e->kind == E_ITEM ? eval(R, S, e->b) : cJSON_CreateString(e->name),
              *r = NULL;
        if (o && k) {
            if (cJSON_IsObject(o) && cJSON_IsString(k))
                r = cJSON_GetObjectItemCaseSensitive(o, k->valuestring);
            else if (cJSON_IsArray(o) && cJSON_IsNumber(k)) {
                int n = cJSON_GetArraySize(o), i = (int)k->valuedouble;
                r = cJSON_GetArrayItem(o, i < 0 ? n + i : i);
            } else if (cJSON_IsString(o) && cJSON_IsNumber(k)) {
                int n = (int)strlen(o->valuestring), i = (int)k->valuedouble;
                if (i < 0) i += n;
                char c[2] = {i >= 0 && i < n ? o->valuestring[i] : '\0', '\0'};
                cJSON_Delete(o), cJSON_Delete(k);
                return cJSON_CreateString(c);
            }
            r = r ? cJSON_Duplicate(r, true) : cJSON_CreateNull();
        }
        cJSON_Delete(o), cJSON_Delete(k);
        return r;
    }
    case E_SLICE: {
        cJSON *o = eval(R, S, e->a), *lo = e->b ? eval(R, S, e->b) : NULL,
              *hi = e->c ? eval(R, S, e->c) : NULL, *r = NULL;
        if (o) {
            bool str = cJSON_IsString(o);
            int n = str ? (int)strlen(o->valuestring) : cJSON_GetArraySize(o);
            int a = lo ? (int)num(lo) : 0, b = hi ? (int)num(hi) : n;
            if (a < 0) a += n;
            if (b < 0) b += n;
            a = a < 0 ? 0 : a > n ? n : a;
            b = b < a ? a : b > n ? n : b;
            if (str) {
                r = str_value(strndup(o->valuestring + a, (size_t)(b - a)));
            } else {
                r = cJSON_CreateArray();
                for (int i = a; i < b; i++)
                    cJSON_AddItemToArray(r, cJSON_Duplicate(cJSON_GetArrayItem(o, i), true));
            }
        }
        cJSON_Delete(o), cJSON_Delete(lo), cJSON_Delete(hi);
        return r;
    }
    case E_CALL: {
        if (e->a->kind == E_NAME && strcmp(e->a->name, "raise_exception") == 0) {
            cJSON *m = e->n_args ? eval(R, S, e->args[0]) : NULL;
            char *s = to_string(m);
            rfail(R, "the template raised an exception: %s", s);
            free(s);
            cJSON_Delete(m);
            return NULL;
        }
        if (e->a->kind == E_NAME && strcmp(e->a->name, "strftime_now") == 0) { /* Llama 3.x: today's date */
            cJSON *f = e->n_args ? eval(R, S, e->args[0]) : NULL;
            char buf[128] = "";
            time_t now = time(NULL);
            struct tm tm;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored                                                                               \
    "-Wformat-nonliteral" /* the template's own format, as transformers passes it */
            if (cJSON_IsString(f) && localtime_r(&now, &tm)) strftime(buf, sizeof buf, f->valuestring, &tm);
#pragma GCC diagnostic pop
            cJSON_Delete(f);
            return cJSON_CreateString(buf);
        }
        if (e->a->kind == E_NAME && strcmp(e->a->name, "namespace") == 0) {
            cJSON *ns = cJSON_CreateObject();
            for (int i = 0; i < e->n_args; i++) {
                cJSON *v = eval(R, S, e->args[i]);
                if (!v) return cJSON_Delete(ns), NULL;
                cJSON_AddItemToObject(ns, e->kw && e->kw[i] ? e->kw[i] : "_", v);
            }
            return ns;
        }
        if (e->a->kind == E_ATTR) {
            cJSON *o = eval(R, S, e->a->a);
            if (!o) return NULL;
            R->pos = e->pos;
            cJSON *r = call_method(R, S, e, o, e->a->name);
            cJSON_Delete(o);
            return r;
        }
        rfail(R, "the call of '%s' is not supported", e->a->kind == E_NAME ? e->a->name : "an expression");
        return NULL;
    }
    case E_FILTER: {
        cJSON *v = eval(R, S, e->a);
        if (!v) return NULL;
        R->pos = e->pos;
        cJSON *r = apply_filter(R, S, e, v);
        cJSON_Delete(v);
        return r;
    }
    case E_TEST: {
        bool r;
        if (strcmp(e->name, "defined") == 0 || strcmp(e->name, "undefined") == 0) {
            const expr *x = e->a;
            bool def = x->kind == E_NAME ? lookup(S, x->name) != NULL : true;
            if (x->kind != E_NAME) {
                cJSON *v = eval(R, S, x);
                def = v && !cJSON_IsNull(v);
                cJSON_Delete(v);
            }
            r = e->name[0] == 'd' ? def : !def;
        } else {
            cJSON *v = eval(R, S, e->a);
            if (!v) return NULL;
            if (strcmp(e->name, "none") == 0)
                r = cJSON_IsNull(v);
            else if (strcmp(e->name, "string") == 0)
                r = cJSON_IsString(v);
            else if (strcmp(e->name, "number") == 0)
                r = cJSON_IsNumber(v);
            else if (strcmp(e->name, "mapping") == 0)
                r = cJSON_IsObject(v);
            else if (strcmp(e->name, "sequence") == 0 || strcmp(e->name, "iterable") == 0)
                r = cJSON_IsArray(v) || cJSON_IsString(v);
            else if (strcmp(e->name, "true") == 0)
                r = cJSON_IsTrue(v);
            else if (strcmp(e->name, "false") == 0)
                r = cJSON_IsFalse(v);
            else {
                cJSON_Delete(v);
                rfail(R, "the test '%s' is not supported", e->name);
                return NULL;
            }
            cJSON_Delete(v);
        }
        return cJSON_CreateBool(r != e->negated);
    }
    case E_BIN:
        return eval_bin(R, S, e);
    case E_NOT: {
        cJSON *v = eval(R, S, e->a);
        if (!v) return NULL;
        bool t = truthy(v);
        cJSON_Delete(v);
        return cJSON_CreateBool(!t);
    }
    case E_NEG: {
        cJSON *v = eval(R, S, e->a);
        if (!v) return NULL;
        double x = -num(v);
        cJSON_Delete(v);
        return cJSON_CreateNumber(x);
    }
    case E_COND: {
        cJSON *c = eval(R, S, e->b);
        if (!c) return NULL;
        bool t = truthy(c);
        cJSON_Delete(c);
        return t ? eval(R, S, e->a) : e->c ? eval(R, S, e->c) : cJSON_CreateString("");
    }
    case E_LIST: {
        cJSON *a = cJSON_CreateArray();
        for (int i = 0; i < e->n_args; i++) {
            cJSON *v = eval(R, S, e->args[i]);
            if (!v) return cJSON_Delete(a), NULL;
            cJSON_AddItemToArray(a, v);
        }
        return a;
    }
    }
    return NULL;
}

static void set_var(cJSON *vars, const char *name, cJSON *v) {
    if (cJSON_GetObjectItemCaseSensitive(vars, name))
        cJSON_ReplaceItemInObjectCaseSensitive(vars, name, v);
    else
        cJSON_AddItemToObject(vars, name, v);
}

static bool run(render *R, scope *S, node **nodes, int n) {
    for (int i = 0; i < n && !R->err[0]; i++) {
        node *d = nodes[i];
        switch (d->kind) {
        case N_TEXT:
            emit(R, d->text, strlen(d->text));
            break;
        case N_OUT: {
            cJSON *v = eval(R, S, d->e);
            if (!v) return false;
            char *s = cJSON_IsNull(v) ? strdup("") : to_string(v);
            emit(R, s, strlen(s));
            free(s);
            cJSON_Delete(v);
            break;
        }
        case N_IF: {
            int k = 0;
            for (; k < d->n_conds; k++) {
                cJSON *c = eval(R, S, d->conds[k]);
                if (!c) return false;
                bool t = truthy(c);
                cJSON_Delete(c);
                if (t) break;
            }
            if (!run(R, S, d->bodies[k], d->body_len[k])) return false;
            break;
        }
        case N_FOR: {
            cJSON *seq = eval(R, S, d->e);
            if (!seq) return false;
            if (cJSON_IsObject(seq)) { /* iterating a dict gives its keys */
                cJSON *keys = cJSON_CreateArray();
                for (cJSON *c = seq->child; c; c = c->next)
                    cJSON_AddItemToArray(keys, cJSON_CreateString(c->string));
                cJSON_Delete(seq);
                seq = keys;
            }
            int len = cJSON_GetArraySize(seq), idx = 0;
            /* the loop's own scope: the variable and `loop`; sets inside a loop stay in it, as in jinja2 */
            scope inner = {cJSON_CreateObject(), S};
            for (cJSON *item = seq->child; item && !R->err[0]; item = item->next, idx++) {
                set_var(inner.vars, d->var, cJSON_Duplicate(item, true));
                cJSON *loop = cJSON_CreateObject();
                cJSON_AddNumberToObject(loop, "index", idx + 1);
                cJSON_AddNumberToObject(loop, "index0", idx);
                cJSON_AddNumberToObject(loop, "revindex", len - idx);
                cJSON_AddNumberToObject(loop, "revindex0", len - idx - 1);
                cJSON_AddBoolToObject(loop, "first", idx == 0);
                cJSON_AddBoolToObject(loop, "last", idx == len - 1);
                cJSON_AddNumberToObject(loop, "length", len);
                set_var(inner.vars, "loop", loop);
                run(R, &inner, d->bodies[0], d->body_len[0]);
            }
            cJSON_Delete(inner.vars);
            cJSON_Delete(seq);
            if (R->err[0]) return false;
            break;
        }
        case N_SET: {
            cJSON *v = eval(R, S, d->e);
            if (!v) return false;
            if (d->attr) { /* ns.attr = v: the namespace object wherever it lives */
                cJSON *ns = lookup(S, d->var);
                if (!cJSON_IsObject(ns)) {
                    cJSON_Delete(v);
                    return rfail(R, "'%s' is not a namespace", d->var);
                }
                set_var(ns, d->attr, v);
            } else {
                set_var(S->vars, d->var, v);
            }
            break;
        }
        }
    }
    return !R->err[0];
}

hft_status hft_chat_template_render(const hft_chat_template *t, const char *messages_json,
                                    const char *bos_token, const char *eos_token, bool add_generation_prompt,
                                    char **out) {
    *out = NULL;
    cJSON *messages = cJSON_Parse(messages_json);
    if (!cJSON_IsArray(messages)) {
        cJSON_Delete(messages);
        return hft_error(HFT_EINVAL, "%s: messages must be a JSON array of {\"role\", \"content\"} objects",
                         t->name);
    }
    scope S = {cJSON_CreateObject(), NULL};
    cJSON_AddItemToObject(S.vars, "messages", messages);
    cJSON_AddStringToObject(S.vars, "bos_token", bos_token ? bos_token : "");
    cJSON_AddStringToObject(S.vars, "eos_token", eos_token ? eos_token : "");
    cJSON_AddBoolToObject(S.vars, "add_generation_prompt", add_generation_prompt);
    render R = {.name = t->name, .src = t->src};
    emit(&R, "", 0);
    bool ok = run(&R, &S, t->nodes, t->n);
    cJSON_Delete(S.vars);
    if (!ok) {
        free(R.out);
        return hft_error(HFT_EINVAL, "%s", R.err);
    }
    *out = R.out;
    return HFT_OK;
}
