/* extract.c - the #field part of a reference, applied to a fetched value.
 *
 * Everything that passes through here is secret. Messages name the field and
 * the shape of the document, never its contents: jansson's own error text
 * quotes the input ("... near 'hunter2'"), so it is never copied and is
 * wiped before returning.
 */
#include "backends/extract.h"
#include "lib/escape.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "a JSON object";
    case JSON_ARRAY:
        return "a JSON array";
    case JSON_STRING:
        return "a JSON string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a JSON number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a JSON boolean";
    case JSON_NULL:
        return "JSON null";
    }
    return "an unknown JSON value";
}

/* Why jansson refused the document, from its error code alone. */
static const char *load_reason(enum json_error_code code)
{
    switch (code) {
    case json_error_premature_end_of_input:
        return "unexpected end of input";
    case json_error_end_of_input_expected:
        return "unexpected data after the document";
    case json_error_invalid_utf8:
        return "invalid UTF-8";
    case json_error_null_character:
        return "NUL byte in the input";
    case json_error_null_byte_in_key:
        return "NUL character in an object key";
    case json_error_numeric_overflow:
        return "number out of range";
    case json_error_stack_overflow:
        return "nested too deeply";
    case json_error_duplicate_key:
        return "duplicate key";
    case json_error_out_of_memory:
        return "out of memory";
    default:
        return "syntax error";
    }
}

/* RFC 6901 array index: "0" or digits without a leading zero. */
static int pointer_index(const char *tok, size_t *out)
{
    size_t v = 0;

    if (tok[0] == '\0' || (tok[0] == '0' && tok[1] != '\0'))
        return -EINVAL;
    for (const char *c = tok; *c != '\0'; c++) {
        if (*c < '0' || *c > '9' || v > (SIZE_MAX - 9) / 10)
            return -EINVAL;
        v = v * 10 + (size_t)(*c - '0');
    }
    *out = v;
    return 0;
}

/* Resolve an RFC 6901 pointer; *out is borrowed from root. */
static int pointer_get(const json_t *root, const char *ptr, const json_t **out, char *err,
                       size_t errlen)
{
    char shown[136], prefix[136];   /* config text in messages: ~130 characters */
    size_t plen = strlen(ptr);
    const json_t *cur = root;
    char *tok = NULL;
    size_t i = 0;
    int rc = -ENOMEM;

    escape_bytes(shown, sizeof(shown), ptr, plen, ESCAPE_SQUOTE);
    tok = malloc(plen + 1);
    if (!tok) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    rc = -EINVAL;
    /* ptr[0] == '/': each round consumes "/<token>". */
    while (i < plen) {
        size_t start = i, t = 0, idx;

        for (i++; i < plen && ptr[i] != '/'; i++) {
            if (ptr[i] != '~') {
                tok[t++] = ptr[i];
            } else if (i + 1 < plen && (ptr[i + 1] == '0' || ptr[i + 1] == '1')) {
                tok[t++] = ptr[i + 1] == '0' ? '~' : '/';
                i++;
            } else {
                snprintf(err, errlen,
                         "invalid JSON pointer '%s': '~' must be followed by '0' or '1'", shown);
                goto out;
            }
        }
        tok[t] = '\0';
        if (json_is_object(cur)) {
            cur = json_object_get(cur, tok);
            if (!cur) {
                snprintf(err, errlen, "JSON pointer '%s' not found", shown);
                goto out;
            }
        } else if (json_is_array(cur)) {
            if (strcmp(tok, "-") == 0) {
                snprintf(err, errlen,
                         "invalid JSON pointer '%s': '-' (past the end of an array) cannot be "
                         "read", shown);
                goto out;
            }
            if (pointer_index(tok, &idx) < 0) {
                escape_bytes(prefix, sizeof(prefix), tok, t, ESCAPE_SQUOTE);
                snprintf(err, errlen,
                         "JSON pointer '%s' not found: '%s' is not an array index (use 0, 1, ...)",
                         shown, prefix);
                goto out;
            }
            cur = json_array_get(cur, idx);
            if (!cur) {
                snprintf(err, errlen, "JSON pointer '%s' not found", shown);
                goto out;
            }
        } else {
            /* Only the type of the value is named, never its contents. */
            escape_bytes(prefix, sizeof(prefix), ptr, start, ESCAPE_SQUOTE);
            snprintf(err, errlen, "JSON pointer '%s' not found: '%s' is %s", shown,
                     start ? prefix : "", kind(cur));
            goto out;
        }
    }
    *out = cur;
    rc = 0;
out:
    free(tok);
    return rc;
}

/* Fill out (empty, same max as the input) with the selected value. */
static int put_value(struct secbuf *out, const json_t *v, char *err, size_t errlen)
{
    const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
    size_t need;
    int rc;

    if (json_is_string(v)) {
        /* The characters themselves, NULs included: a string secret is
         * served as is, not as a quoted JSON string. */
        need = json_string_length(v);
        rc = secbuf_append(out, json_string_value(v), need);
    } else {
        /* json_dumpb writes straight into secret memory: no unwiped copy. */
        need = json_dumpb(v, NULL, 0, flags);
        if (need == 0) {
            snprintf(err, errlen, "cannot encode the field as JSON");
            return -EIO;
        }
        rc = secbuf_reserve(out, need);
        if (rc == 0) {
            if (json_dumpb(v, (char *)out->data, need, flags) != need) {
                snprintf(err, errlen, "cannot encode the field as JSON");
                return -EIO;
            }
            out->len = need;
        }
    }
    if (rc == -E2BIG)
        snprintf(err, errlen, "the field is %zu bytes, more than the maximum of %zu", need,
                 out->max);
    else if (rc < 0)
        snprintf(err, errlen, "out of memory");
    return rc;
}

int extract_field(struct secbuf *buf, const char *field, char *err, size_t errlen)
{
    struct secbuf out;
    json_error_t jerr;
    json_t *root = NULL;
    const json_t *v = NULL;
    char shown[136];
    int rc = -EINVAL;

    secbuf_init(&out, buf->max);
    escape_str(shown, sizeof(shown), field, ESCAPE_SQUOTE);
    if (buf->len == 0) {
        snprintf(err, errlen, "value is empty, not a JSON document with field '%s'", shown);
        goto out;
    }
    /* JSON_DECODE_ANY only to say "a JSON string, not an object" instead of
     * a bare syntax error; scalars are refused below. JSON_ALLOW_NUL: a
     * "\u0000" inside a string is valid JSON and is served as is. */
    root = json_loadb((const char *)buf->data, buf->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!root) {
        enum json_error_code code = json_error_code(&jerr);
        snprintf(err, errlen, "value is not valid JSON (line %d, column %d: %s)", jerr.line,
                 jerr.column, load_reason(code));
        rc = code == json_error_out_of_memory ? -ENOMEM : -EINVAL;
        goto out;
    }

    if (field[0] == '/') {
        if (!json_is_object(root) && !json_is_array(root)) {
            snprintf(err, errlen, "value is %s, not an object or array; it has no field '%s'",
                     kind(root), shown);
            goto out;
        }
        rc = pointer_get(root, field, &v, err, errlen);
        if (rc < 0)
            goto out;
    } else {
        if (json_is_array(root)) {
            snprintf(err, errlen,
                     "value is a JSON array, not an object; use a JSON pointer such as #/0");
            goto out;
        }
        if (!json_is_object(root)) {
            snprintf(err, errlen, "value is %s, not an object; it has no field '%s'", kind(root),
                     shown);
            goto out;
        }
        v = json_object_get(root, field);
        if (!v) {
            snprintf(err, errlen, "field '%s' not found", shown);
            goto out;
        }
    }

    rc = put_value(&out, v, err, errlen);
    if (rc < 0)
        goto out;
    secbuf_cleanup(buf);   /* wipes the whole document */
    *buf = out;
    secbuf_init(&out, 0);  /* ownership moved */
    rc = 0;
out:
    /* jansson's error text quotes the input it choked on. */
    sodium_memzero(&jerr, sizeof(jerr));
    json_decref(root);
    secbuf_cleanup(&out);
    return rc;
}
