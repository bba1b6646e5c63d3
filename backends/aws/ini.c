/* ini.c - the AWS shared config and credentials file format, parsed in
 * place in secret memory. */
#include "backends/aws/ini.h"
#include "lib/secfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define INI_MAX_BYTES (1024 * 1024)

struct ini_entry {
    const char *section, *key, *value;   /* into text */
};

struct ini {
    struct secbuf text;                  /* NUL-separated after parsing */
    struct ini_entry *entries;
    size_t n, cap;
    const char **sections;
    size_t nsec, capsec;
};

void ini_free(struct ini *ini)
{
    if (!ini)
        return;
    secbuf_cleanup(&ini->text);
    free(ini->entries);
    free(ini->sections);
    free(ini);
}

static char *trim(char *s, char *end)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    *end = '\0';
    return s;
}

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 16;
    void *q = realloc(*p, c * size);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

static int parse(struct ini *ini, const char *name, char *err, size_t errlen)
{
    char *p = (char *)ini->text.data, *end = p + ini->text.len;
    const char *section = NULL;
    unsigned line = 0;

    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *eol = nl ? nl : end;
        line++;
        bool indented = *p == ' ' || *p == '\t';
        char *s = trim(p, eol);
        p = nl ? nl + 1 : end;
        if (!*s || *s == '#' || *s == ';' || indented)
            continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close) {
                snprintf(err, errlen, "%s:%u: section header without ']'", name, line);
                return -EINVAL;
            }
            section = trim(s + 1, close);
            if (grow((void **)&ini->sections, &ini->capsec, ini->nsec, sizeof(char *)) < 0)
                return -ENOMEM;
            ini->sections[ini->nsec++] = section;
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%u: expected 'key = value'", name, line);
            return -EINVAL;
        }
        if (!section) {
            snprintf(err, errlen, "%s:%u: setting outside any [section]", name, line);
            return -EINVAL;
        }
        char *key = trim(s, eq);
        char *value = trim(eq + 1, eol);
        for (char *k = key; *k; k++)
            if (*k >= 'A' && *k <= 'Z')
                *k = (char)(*k - 'A' + 'a');
        if (grow((void **)&ini->entries, &ini->cap, ini->n, sizeof(*ini->entries)) < 0)
            return -ENOMEM;
        ini->entries[ini->n++] = (struct ini_entry){section, key, value};
    }
    return 0;
}

int ini_parse(const char *name, const char *text, size_t len, struct ini **out, char *err,
              size_t errlen)
{
    struct ini *ini = calloc(1, sizeof(*ini));
    int rc;
    if (!ini)
        return -ENOMEM;
    secbuf_init(&ini->text, INI_MAX_BYTES + 1);
    rc = secbuf_append(&ini->text, text, len);
    if (rc == 0)
        rc = secbuf_append(&ini->text, "", 1);   /* room for the last NUL */
    if (rc == 0) {
        ini->text.len--;
        rc = parse(ini, name, err, errlen);
    } else {
        snprintf(err, errlen, "%s: larger than %d bytes", name, INI_MAX_BYTES);
    }
    if (rc < 0) {
        ini_free(ini);
        return rc;
    }
    *out = ini;
    return 0;
}

int ini_load(const char *path, struct ini **out, char *err, size_t errlen)
{
    struct secbuf b;
    int rc = secfile_read(path, INI_MAX_BYTES, &b, err, errlen);
    if (rc < 0)
        return rc;
    rc = ini_parse(path, (const char *)b.data, b.len, out, err, errlen);
    secbuf_cleanup(&b);
    return rc;
}

const char *ini_get(const struct ini *ini, const char *section, const char *key)
{
    const char *v = NULL;
    if (!ini)
        return NULL;
    /* The last definition wins, as in the AWS CLI. */
    for (size_t i = 0; i < ini->n; i++)
        if (strcmp(ini->entries[i].section, section) == 0 && strcmp(ini->entries[i].key, key) == 0)
            v = ini->entries[i].value;
    return v;
}

int ini_has_section(const struct ini *ini, const char *section)
{
    for (size_t i = 0; ini && i < ini->nsec; i++)
        if (strcmp(ini->sections[i], section) == 0)
            return 1;
    return 0;
}
