/* The loops over a document's characters and words: its white space folded and its words
 * (core/text.py), CCNet's character rules before perplexity (filters/perplexity.py), and for
 * filters/heuristics.py Gopher's top and duplicate n-gram fractions, the moving-average type-token
 * ratio, the counts of characters by class (letters, the language's script, symbols and digits,
 * white space) and of mojibake sequences. The classes are tables of flags, one byte per code
 * point, that the Python side makes from the regex module's Unicode classes.
 *
 * Why C: the heuristics are the largest share of the curation's CPU outside native libraries
 * (bench/curate.py), and these loops were most of it: numpy sorts of a few hundred word ids, one
 * per n-gram size, that are mostly call overhead, and a regular expression's pass per class. The
 * reader's white-space folding was three regular expressions' passes over every document, and
 * CCNet's character rules three more over every document that perplexity scores.
 *
 * Words are numbered by their first occurrence (a hash table of str, compared as Python compares
 * them), and each n-gram size numbers its n-grams the same way from the pairs (number of its first
 * n - 1 words, its last word): one pass a size, no sort. Every result is an integer count divided
 * by another, as a double, which is what Python's int / int gives below 2 ** 53.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct { /* open addressing, linear probing, slots hold an entry's index or -1 */
    Py_ssize_t *slots;
    size_t mask;
} Table;

static int table_init(Table *t, Py_ssize_t entries) {
    size_t size = 16;
    while (size < (size_t)entries * 2) size <<= 1;
    t->slots = PyMem_Malloc(size * sizeof(Py_ssize_t));
    if (t->slots == NULL) return -1;
    memset(t->slots, 0xff, size * sizeof(Py_ssize_t)); /* all -1 */
    t->mask = size - 1;
    return 0;
}

/* Mixed into every key before it is placed: a document's words could otherwise be ordered so that
 * their keys crowd one stretch of a table and each lookup walks it (quadratic time). Set when the
 * module loads, from Python's randomized str hash and where the loader put this variable; no
 * result depends on it, only where the keys sit. */
static uint64_t salt;

static uint64_t mix64(uint64_t z) { /* SplitMix64's finalizer */
    z ^= salt;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* ids[i]: the position where words[i] first occurs. -1 and an exception when an item is not a str. */
static int first_positions(PyObject *words, Py_ssize_t n, Py_ssize_t *ids) {
    Table t;
    if (table_init(&t, n) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *word = PyList_GET_ITEM(words, i);
        if (!PyUnicode_CheckExact(word)) {
            PyMem_Free(t.slots);
            PyErr_SetString(PyExc_TypeError, "words must be a list of str");
            return -1;
        }
        Py_hash_t hash = PyObject_Hash(word); /* a str keeps its hash */
        size_t slot = mix64((uint64_t)hash) & t.mask;
        for (;;) {
            Py_ssize_t at = t.slots[slot];
            if (at < 0) {
                t.slots[slot] = i;
                ids[i] = i;
                break;
            }
            PyObject *other = PyList_GET_ITEM(words, at);
            if (other == word || (PyObject_Hash(other) == hash && PyUnicode_Compare(other, word) == 0)) {
                ids[i] = at;
                break;
            }
            slot = (slot + 1) & t.mask;
        }
    }
    PyMem_Free(t.slots);
    return 0;
}

static PyObject *words_argument(PyObject *arg, Py_ssize_t *n) {
    if (!PyList_CheckExact(arg)) {
        PyErr_SetString(PyExc_TypeError, "words must be a list of str");
        return NULL;
    }
    *n = PyList_GET_SIZE(arg);
    if (*n >= ((Py_ssize_t)1 << 31)) { /* n-gram numbers are packed two to a 64-bit key */
        PyErr_SetString(PyExc_ValueError, "too many words");
        return NULL;
    }
    return arg;
}

static double ratio(int64_t part, int64_t whole) { return whole ? (double)part / (double)whole : 0.0; }

/* repetition(words) -> (top 2-, 3-, 4-gram fractions, duplicate 5- to 10-gram fractions), each of
 * the words' characters. Top: characters of the most frequent n-gram (the earliest of equally
 * frequent ones) times its count. Duplicate: characters of the words covered by an occurrence of an
 * n-gram that occurred earlier, each word once. A size at which no n-gram repeats ends the
 * counting: no larger one repeats either, and their fractions are 0. */
static PyObject *repetition(PyObject *self, PyObject *arg) {
    Py_ssize_t n;
    if (words_argument(arg, &n) == NULL) return NULL;
    double fractions[9] = {0};
    Py_ssize_t *ids = PyMem_Malloc((n + 1) * sizeof(Py_ssize_t));
    Py_ssize_t *grams = PyMem_Malloc((n + 1) * sizeof(Py_ssize_t));
    Py_ssize_t *first = PyMem_Malloc((n + 1) * sizeof(Py_ssize_t));
    Py_ssize_t *counts = PyMem_Malloc((n + 1) * sizeof(Py_ssize_t));
    uint64_t *keys = PyMem_Malloc((n + 1) * sizeof(uint64_t));
    int64_t *lengths = PyMem_Malloc((n + 1) * sizeof(int64_t));
    int64_t *edges = PyMem_Malloc((n + 1) * sizeof(int64_t));
    Table t = {NULL, 0};
    PyObject *result = NULL;
    if (!ids || !grams || !first || !counts || !keys || !lengths || !edges || table_init(&t, n) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (first_positions(arg, n, ids) < 0) goto done;
    int64_t total_chars = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        lengths[i] = PyUnicode_GET_LENGTH(PyList_GET_ITEM(arg, i));
        total_chars += lengths[i];
        grams[i] = ids[i]; /* the 1-grams */
    }
    for (int size = 2; size <= 10; size++) {
        Py_ssize_t m = n - size + 1;
        if (m <= 0) break;
        memset(t.slots, 0xff, (t.mask + 1) * sizeof(Py_ssize_t));
        Py_ssize_t distinct = 0;
        for (Py_ssize_t i = 0; i < m; i++) {
            uint64_t key = ((uint64_t)grams[i] << 32) | (uint64_t)ids[i + size - 1];
            size_t slot = mix64(key) & t.mask;
            for (;;) {
                Py_ssize_t at = t.slots[slot];
                if (at < 0) {
                    t.slots[slot] = distinct;
                    keys[distinct] = key;
                    first[distinct] = i;
                    counts[distinct] = 1;
                    grams[i] = distinct++;
                    break;
                }
                if (keys[at] == key) {
                    counts[at]++;
                    grams[i] = at;
                    break;
                }
                slot = (slot + 1) & t.mask;
            }
        }
        if (distinct == m) break;
        if (size <= 4) { /* numbered by first occurrence: the first of the most frequent is the earliest */
            Py_ssize_t top = 0;
            for (Py_ssize_t g = 1; g < distinct; g++)
                if (counts[g] > counts[top]) top = g;
            int64_t chars = 0;
            for (Py_ssize_t k = first[top]; k < first[top] + size; k++) chars += lengths[k];
            fractions[size - 2] = ratio((int64_t)counts[top] * chars, total_chars);
        } else if (size >= 5) {
            memset(edges, 0, (n + 1) * sizeof(int64_t));
            for (Py_ssize_t i = 0; i < m; i++) {
                if (first[grams[i]] != i) { /* this n-gram occurred earlier */
                    edges[i]++;
                    edges[i + size]--;
                }
            }
            int64_t covering = 0, chars = 0;
            for (Py_ssize_t k = 0; k < n; k++) {
                covering += edges[k];
                if (covering > 0) chars += lengths[k];
            }
            fractions[size - 2] = ratio(chars, total_chars);
        }
    }
    result = Py_BuildValue("(ddddddddd)", fractions[0], fractions[1], fractions[2], fractions[3], fractions[4],
                           fractions[5], fractions[6], fractions[7], fractions[8]);
done:
    PyMem_Free(ids);
    PyMem_Free(grams);
    PyMem_Free(first);
    PyMem_Free(counts);
    PyMem_Free(keys);
    PyMem_Free(lengths);
    PyMem_Free(edges);
    PyMem_Free(t.slots);
    return result;
}

/* mattr(words, window) -> the mean over every window of `window` consecutive words of its distinct
 * words over `window`; of at most `window` words, distinct over all (0 for none). A window's
 * distinct words are those whose previous occurrence lies before it, so the sum over windows
 * counts, for each word, the windows that start after its previous occurrence and still hold it. */
static PyObject *mattr(PyObject *self, PyObject *args) {
    PyObject *words;
    Py_ssize_t window;
    if (!PyArg_ParseTuple(args, "On:mattr", &words, &window)) return NULL;
    Py_ssize_t n;
    if (words_argument(words, &n) == NULL) return NULL;
    if (window < 1) {
        PyErr_SetString(PyExc_ValueError, "window must be at least 1");
        return NULL;
    }
    Py_ssize_t *ids = PyMem_Malloc((n + 1) * sizeof(Py_ssize_t));
    Py_ssize_t *last = PyMem_Malloc((n + 1) * sizeof(Py_ssize_t));
    PyObject *result = NULL;
    if (!ids || !last) {
        PyErr_NoMemory();
        goto done;
    }
    if (first_positions(words, n, ids) < 0) goto done;
    if (n <= window) {
        Py_ssize_t distinct = 0;
        for (Py_ssize_t i = 0; i < n; i++) distinct += ids[i] == i;
        result = PyFloat_FromDouble(ratio(distinct, n));
        goto done;
    }
    int64_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t previous = ids[i] == i ? -1 : last[ids[i]];
        last[ids[i]] = i;
        Py_ssize_t from = previous + 1 > i - window + 1 ? previous + 1 : i - window + 1;
        Py_ssize_t to = i < n - window ? i : n - window;
        if (to >= from) total += to - from + 1;
    }
    result = PyFloat_FromDouble((double)total / ((double)window * (double)(n - window + 1)));
done:
    PyMem_Free(ids);
    PyMem_Free(last);
    return result;
}

/* A text and its characters' flags (flags[code point], a bytes-like object, one byte each), the
 * arguments (text, flags) of class_counts, mojibake and split_words. */
typedef struct {
    PyObject *text;
    Py_buffer table;
    const unsigned char *flags;
    Py_ssize_t size, n; /* the flags', the text's */
    int kind;
    const void *data;
} FlaggedText;

static int parse_flagged_text(PyObject *args, const char *format, FlaggedText *t) {
    if (!PyArg_ParseTuple(args, format, &t->text, &t->table)) return 0;
    t->flags = t->table.buf;
    t->size = t->table.len;
    t->n = PyUnicode_GET_LENGTH(t->text);
    t->kind = PyUnicode_KIND(t->text);
    t->data = PyUnicode_DATA(t->text);
    return 1;
}

/* The flags of the character at `at`, or -1 when its code point lies beyond them. */
static inline int flags_at(const FlaggedText *t, Py_ssize_t at) {
    Py_UCS4 c = PyUnicode_READ(t->kind, t->data, at);
    return (Py_ssize_t)c < t->size ? t->flags[c] : -1;
}

/* class_counts(text, flags) -> how many characters of `text` have each of the 8 bits of their
 * flags, or None when a code point lies beyond `flags`. */
static PyObject *class_counts(PyObject *self, PyObject *args) {
    FlaggedText t;
    if (!parse_flagged_text(args, "Uy*:class_counts", &t)) return NULL;
    Py_ssize_t histogram[256] = {0};
    if (t.kind == PyUnicode_1BYTE_KIND && t.size >= 256) {
        const Py_UCS1 *chars = t.data;
        for (Py_ssize_t i = 0; i < t.n; i++) histogram[t.flags[chars[i]]]++;
    } else {
        for (Py_ssize_t i = 0; i < t.n; i++) {
            int f = flags_at(&t, i);
            if (f < 0) {
                PyBuffer_Release(&t.table);
                Py_RETURN_NONE;
            }
            histogram[f]++;
        }
    }
    PyBuffer_Release(&t.table);
    Py_ssize_t counts[8] = {0};
    for (int value = 1; value < 256; value++)
        for (int bit = 0; bit < 8; bit++)
            if (value & (1 << bit)) counts[bit] += histogram[value];
    return Py_BuildValue("(nnnnnnnn)", counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], counts[6], counts[7]);
}

/* words_with(words, flags, bit) -> the words (a list of str) that have a character with `bit` in its
 * flags, in order, or None when a code point beyond `flags` comes before a word is decided (the
 * caller's larger table then gives the same list). */
static PyObject *words_with(PyObject *self, PyObject *args) {
    PyObject *words, *kept = NULL;
    Py_buffer table;
    int bit;
    if (!PyArg_ParseTuple(args, "O!y*i:words_with", &PyList_Type, &words, &table, &bit)) return NULL;
    if (bit < 0 || bit > 7) {
        PyErr_SetString(PyExc_ValueError, "bit must be 0 to 7");
        goto done;
    }
    const unsigned char *flags = table.buf;
    Py_ssize_t size = table.len;
    if ((kept = PyList_New(0)) == NULL) goto done;
    for (Py_ssize_t w = 0; w < PyList_GET_SIZE(words); w++) {
        PyObject *word = PyList_GET_ITEM(words, w);
        if (!PyUnicode_Check(word)) {
            PyErr_SetString(PyExc_TypeError, "words must be a list of str");
            Py_CLEAR(kept);
            goto done;
        }
        int kind = PyUnicode_KIND(word), found = 0;
        const void *data = PyUnicode_DATA(word);
        for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(word) && !found; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if ((Py_ssize_t)c >= size) {
                Py_DECREF(kept);
                kept = Py_NewRef(Py_None);
                goto done;
            }
            found = (flags[c] >> bit) & 1;
        }
        if (found && PyList_Append(kept, word) < 0) {
            Py_CLEAR(kept);
            goto done;
        }
    }
done:
    PyBuffer_Release(&table);
    return kept;
}

/* mojibake(text, flags) -> how many sequences the regular expression [A][C]|[B][C]{2}|[D] finds in
 * `text`, one after another (A, B, C, D: the characters with bit 0, 1, 2, 3 of their flags; no
 * character of A or B is one of C), or None when a code point lies beyond `flags`. A failed A or B
 * moves on one character, as the expression's search does. */
static PyObject *mojibake(PyObject *self, PyObject *args) {
    FlaggedText t;
    if (!parse_flagged_text(args, "Uy*:mojibake", &t)) return NULL;
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < t.n; i++) {
        int f = flags_at(&t, i);
        if (f < 0) goto beyond;
        if (f & 8) {
            count++;
        } else if (f & 3) {
            Py_ssize_t needed = (f & 1) ? 1 : 2, j = 1;
            for (; j <= needed && i + j < t.n; j++) {
                int g = flags_at(&t, i + j);
                if (g < 0) goto beyond;
                if (!(g & 4)) break;
            }
            if (j > needed) {
                count++;
                i += needed;
            }
        }
    }
    PyBuffer_Release(&t.table);
    return PyLong_FromSsize_t(count);
beyond:
    PyBuffer_Release(&t.table);
    Py_RETURN_NONE;
}

/* split_words(text, flags) -> the words of `text`, as the regular expression [W]+(?:['’][T]+)* finds
 * them one after another (W: the characters with bit 0 of their flags, T: those with bit 1), or None
 * when a code point lies beyond `flags`. The expression never backtracks: a word is a longest run
 * of W, then, while an apostrophe is followed by a T, the apostrophe and a longest run of T. */
static PyObject *split_words(PyObject *self, PyObject *args) {
    FlaggedText t;
    if (!parse_flagged_text(args, "Uy*:split_words", &t)) return NULL;
    Py_ssize_t n = t.n, i = 0;
    int f;
    PyObject *words = PyList_New(0);
    if (words == NULL) goto fail;
    while (i < n) {
        if ((f = flags_at(&t, i)) < 0) goto beyond;
        if (!(f & 1)) {
            i++;
            continue;
        }
        Py_ssize_t start = i++;
        for (; i < n; i++) {
            if ((f = flags_at(&t, i)) < 0) goto beyond;
            if (!(f & 1)) break;
        }
        while (i + 1 < n) {
            Py_UCS4 c = PyUnicode_READ(t.kind, t.data, i);
            if (c != '\'' && c != 0x2019) break;
            if ((f = flags_at(&t, i + 1)) < 0) goto beyond;
            if (!(f & 2)) break;
            for (i += 2; i < n; i++) {
                if ((f = flags_at(&t, i)) < 0) goto beyond;
                if (!(f & 2)) break;
            }
        }
        PyObject *word = PyUnicode_Substring(t.text, start, i);
        if (word == NULL || PyList_Append(words, word) < 0) {
            Py_XDECREF(word);
            goto fail;
        }
        Py_DECREF(word);
    }
    PyBuffer_Release(&t.table);
    return words;
beyond:
    Py_DECREF(words);
    PyBuffer_Release(&t.table);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(words);
    PyBuffer_Release(&t.table);
    return NULL;
}

/* fold_white_space(text) -> `text` with each run of white space other than newlines (str.isspace's,
 * but \x1c-\x1f, which Python also counts as line breaks) made one space, the spaces next to a
 * newline dropped, each run of newlines (white space between them included) cut to at most two,
 * and then stripped as str.strip does: core.text.normalize's folding, in one pass. */
static PyObject *fold_white_space(PyObject *self, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "text must be a str");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), m = 0, newlines = 0;
    int kind = PyUnicode_KIND(text), space = 0;
    const void *data = PyUnicode_DATA(text);
    void *out = PyMem_Malloc(n ? (size_t)n * kind : 1); /* the result is never longer, and its characters fit `kind` */
    if (out == NULL) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i <= n; i++) {
        Py_UCS4 c = i < n ? PyUnicode_READ(kind, data, i) : 0;
        if (i < n && c == '\n') {
            newlines++;
            space = 0;
        } else if (i < n && Py_UNICODE_ISSPACE(c) && (c < 0x1c || c > 0x1f)) {
            space = 1;
        } else {
            for (Py_ssize_t k = 0; k < (newlines < 2 ? newlines : 2); k++) PyUnicode_WRITE(kind, out, m++, '\n');
            if (space && !newlines) PyUnicode_WRITE(kind, out, m++, ' ');
            newlines = space = 0;
            if (i < n) PyUnicode_WRITE(kind, out, m++, c);
        }
    }
    Py_ssize_t start = 0, end = m;
    while (start < end && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, out, start))) start++;
    while (end > start && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, out, end - 1))) end--;
    /* a new str of the smallest kind that holds it, as every str must be (a space can have been the widest character) */
    PyObject *folded = PyUnicode_FromKindAndData(kind, (char *)out + start * kind, end - start);
    PyMem_Free(out);
    return folded;
}

typedef struct {
    Py_UCS4 key;
    PyObject *value; /* borrowed from the caller's dict */
} Replacement;

static int compare_replacements(const void *a, const void *b) {
    Py_UCS4 x = ((const Replacement *)a)->key, y = ((const Replacement *)b)->key;
    return (x > y) - (x < y);
}

/* ccnet_characters(text, punctuation) -> `text` with CCNet's character rules, in the order its
 * normalizer applies them: each decimal digit (the standard library re's \d) made 0, each character
 * that is a key of `punctuation` (a dict of one-character str to str) made its value, and the
 * non-printing characters (0-31 but the newline, 127-159) removed. */
static PyObject *ccnet_characters(PyObject *self, PyObject *args) {
    PyObject *text, *punctuation, *key, *value, *result = NULL;
    if (!PyArg_ParseTuple(args, "UO!:ccnet_characters", &text, &PyDict_Type, &punctuation)) return NULL;
    Py_ssize_t entries = PyDict_GET_SIZE(punctuation), position = 0, e = 0;
    Replacement *table = PyMem_Malloc((entries ? entries : 1) * sizeof(Replacement));
    if (table == NULL) return PyErr_NoMemory();
    while (PyDict_Next(punctuation, &position, &key, &value)) {
        if (!PyUnicode_Check(key) || PyUnicode_GET_LENGTH(key) != 1 || !PyUnicode_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "punctuation must map one-character str to str");
            PyMem_Free(table);
            return NULL;
        }
        table[e].key = PyUnicode_READ_CHAR(key, 0);
        table[e++].value = value;
    }
    qsort(table, entries, sizeof(Replacement), compare_replacements);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), m = 0, capacity = n + n / 8 + 16;
    int kind = PyUnicode_KIND(text), out_kind = kind; /* one that holds the text and every replacement */
    for (e = 0; e < entries; e++) out_kind = PyUnicode_KIND(table[e].value) > out_kind ? PyUnicode_KIND(table[e].value) : out_kind;
    const void *data = PyUnicode_DATA(text);
    void *out = PyMem_Malloc(capacity * out_kind);
    if (out == NULL) {
        PyMem_Free(table);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        const Replacement *found = NULL;
        if (Py_UNICODE_ISDECIMAL(c)) {
            c = '0';
        } else if (c < 32 ? c != '\n' : (c >= 127 && c < 160)) {
            continue;
        } else if (entries && c >= table[0].key) { /* most characters are below every key */
            Replacement probe = {c, NULL};
            found = bsearch(&probe, table, entries, sizeof(Replacement), compare_replacements);
        }
        Py_ssize_t length = found ? PyUnicode_GET_LENGTH(found->value) : 1;
        if (m + length > capacity) {
            capacity = 2 * capacity + length;
            void *grown = PyMem_Realloc(out, capacity * out_kind);
            if (grown == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            out = grown;
        }
        if (found) {
            for (Py_ssize_t k = 0; k < length; k++) PyUnicode_WRITE(out_kind, out, m++, PyUnicode_READ_CHAR(found->value, k));
        } else {
            PyUnicode_WRITE(out_kind, out, m++, c);
        }
    }
    result = PyUnicode_FromKindAndData(out_kind, out, m); /* of the narrowest kind that holds it */
done:
    PyMem_Free(out);
    PyMem_Free(table);
    return result;
}

static PyMethodDef methods[] = {
    {"repetition", repetition, METH_O, "Top 2- to 4-gram and duplicate 5- to 10-gram fractions of a list of words."},
    {"mattr", mattr, METH_VARARGS, "Moving-average type-token ratio of a list of words over windows of `window`."},
    {"class_counts", class_counts, METH_VARARGS, "Characters of a text with each bit of their flags set."},
    {"mojibake", mojibake, METH_VARARGS, "Mojibake sequences in a text, by the flags of its characters."},
    {"words_with", words_with, METH_VARARGS, "The words with a character that has the bit in its flags."},
    {"split_words", split_words, METH_VARARGS, "The words of a text, by the flags of its characters."},
    {"fold_white_space", fold_white_space, METH_O, "The text with its white space folded, as core.text.normalize does."},
    {"ccnet_characters", ccnet_characters, METH_VARARGS, "The text with CCNet's digit, punctuation and non-printing rules applied."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_text_stats", NULL, -1, methods};

PyMODINIT_FUNC PyInit__text_stats(void) {
    PyObject *seed = PyUnicode_FromString("core._text_stats");
    if (seed == NULL) return NULL;
    salt = (uint64_t)PyObject_Hash(seed) ^ (uint64_t)(uintptr_t)&salt;
    Py_DECREF(seed);
    return PyModule_Create(&module);
}
