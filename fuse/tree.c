/* tree.c - see tree.h. */
#include "fuse/tree.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FS_INODES_MIN_CAP 64

/* 16 bytes: the table holds every name ever served (a reload keeps it),
 * at most half full, so 10,000 secrets make 32,768 slots; 32-byte slots
 * (with the length and the flag apart) were 1 MiB, every page touched
 * (docs/internals/memory.md). The length is the path's strlen. */
struct fs_inode_slot {
    char *path;            /* NULL: empty slot; else owned, NUL-terminated */
    uint64_t ino_dir;      /* ino << 1 | is_dir */
};

static bool slot_is(const struct fs_inode_slot *s, const char *path, size_t len, bool is_dir)
{
    return (s->ino_dir & 1) == is_dir && strncmp(s->path, path, len) == 0 && s->path[len] == '\0';
}

/* ---- name -> inode ---- */

void fs_inodes_init(struct fs_inodes *t)
{
    *t = (struct fs_inodes){.next = FS_TREE_ROOT_INO};
}

void fs_inodes_cleanup(struct fs_inodes *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i].path);
    free(t->slots);
    fs_inodes_init(t);
}

/* FNV-1a: names come from the operator's config, not from a caller who
 * could choose collisions. */
static size_t path_hash(const char *path, size_t len, bool is_dir)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)path[i];
        h *= 1099511628211ULL;
    }
    h ^= is_dir;
    h *= 1099511628211ULL;
    return (size_t)(h ^ (h >> 32));
}

/* The slot holding (path, is_dir), or the empty slot where it would go. */
static struct fs_inode_slot *slot_find(struct fs_inode_slot *slots, size_t cap, const char *path,
                                       size_t len, bool is_dir)
{
    size_t i = path_hash(path, len, is_dir) & (cap - 1);
    for (;;) {
        struct fs_inode_slot *s = &slots[i];
        if (!s->path || slot_is(s, path, len, is_dir))
            return s;
        i = (i + 1) & (cap - 1);
    }
}

static int inodes_grow(struct fs_inodes *t)
{
    size_t cap = t->cap ? t->cap * 2 : FS_INODES_MIN_CAP;
    struct fs_inode_slot *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].path)
            *slot_find(slots, cap, t->slots[i].path, strlen(t->slots[i].path),
                       t->slots[i].ino_dir & 1) = t->slots[i];
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

int fs_inodes_get(struct fs_inodes *t, const char *path, size_t len, bool is_dir, uint64_t *out)
{
    /* At most half full, so a probe always meets an empty slot. */
    if ((t->used + 1) * 2 > t->cap && inodes_grow(t) < 0)
        return -ENOMEM;
    struct fs_inode_slot *s = slot_find(t->slots, t->cap, path, len, is_dir);
    if (!s->path) {
        char *copy = malloc(len + 1);
        if (!copy)
            return -ENOMEM;
        memcpy(copy, path, len);
        copy[len] = '\0';
        *s = (struct fs_inode_slot){.path = copy, .ino_dir = t->next++ << 1 | is_dir};
        t->used++;
    }
    *out = s->ino_dir >> 1;
    return 0;
}

/* ---- the tree ---- */

static int name_cmp(const struct fs_node *c, const char *name, size_t len)
{
    size_t m = c->name_len < len ? c->name_len : len;
    int cmp = memcmp(c->name, name, m);
    if (cmp == 0)
        cmp = c->name_len < len ? -1 : c->name_len > len;
    return cmp;
}

/* Binary search: the index in dir->children where name is or would go. */
static size_t child_pos(const struct fs_tree *t, const struct fs_node *dir, const char *name,
                        size_t len, bool *found)
{
    size_t lo = 0, hi = dir->n_children;
    *found = false;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int cmp = name_cmp(&t->nodes[dir->children[mid]], name, len);
        if (cmp == 0) {
            *found = true;
            return mid;
        }
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const struct fs_node *fs_tree_child(const struct fs_tree *t, const struct fs_node *dir, const char *name,
                              size_t len)
{
    bool found;
    size_t pos = child_pos(t, dir, name, len, &found);
    return found ? &t->nodes[dir->children[pos]] : NULL;
}

/* The child of node dir for segment seg[0..len) of full, adding it if
 * missing; full[0..prefix) names it in the inode table. Returns its node
 * index or a negative errno. */
static long child_add(struct fs_tree *t, struct fs_inodes *inodes, size_t dir, const char *full,
                      size_t prefix, const char *seg, size_t len, bool is_dir)
{
    struct fs_node *d = &t->nodes[dir];
    bool found;
    size_t pos = child_pos(t, d, seg, len, &found);
    if (found) {
        size_t c = d->children[pos];
        /* "a" and "a/b", or a name twice. */
        return t->nodes[c].is_dir && is_dir ? (long)c : -EINVAL;
    }
    uint64_t ino;
    int rc = fs_inodes_get(inodes, full, prefix, is_dir, &ino);
    if (rc < 0)
        return rc;
    size_t *ch = realloc(d->children, (d->n_children + 1) * sizeof(*ch));
    if (!ch)
        return -ENOMEM;
    d->children = ch;
    size_t idx = t->n_nodes++;
    t->nodes[idx] = (struct fs_node){
        .ino = ino, .parent = d->ino, .name = seg, .name_len = len, .is_dir = is_dir,
    };
    memmove(d->children + pos + 1, d->children + pos, (d->n_children - pos) * sizeof(*ch));
    d->children[pos] = idx;
    d->n_children++;
    return (long)idx;
}

static int tree_fill(struct fs_tree *t, struct fs_inodes *inodes, const char *const *names)
{
    uint64_t root;
    int rc = fs_inodes_get(inodes, "", 0, true, &root);
    if (rc < 0)
        return rc;
    if (root != FS_TREE_ROOT_INO)
        return -EINVAL;   /* the table was used before any tree: not ours */
    t->nodes[0] = (struct fs_node){.ino = root, .parent = root, .name = "", .is_dir = true};
    t->n_nodes = 1;
    for (size_t i = 0; i < t->n_secrets; i++) {
        const char *full = names[i], *seg = full;
        size_t dir = 0;
        for (;;) {
            const char *slash = strchr(seg, '/');
            size_t len = slash ? (size_t)(slash - seg) : strlen(seg);
            long n = child_add(t, inodes, dir, full, (size_t)(seg - full) + len, seg, len,
                               slash != NULL);
            if (n < 0)
                return (int)n;
            if (!slash) {
                t->nodes[n].secret = i;
                t->node_of[i] = (size_t)n;
                break;
            }
            dir = (size_t)n;
            seg = slash + 1;
        }
    }
    return 0;
}

int fs_tree_build(struct fs_inodes *inodes, const char *const *names, size_t n,
                  struct fs_tree **out)
{
    int rc = -ENOMEM;
    struct fs_tree *t = calloc(1, sizeof(*t));
    if (!t)
        goto out;
    /* Every node is allocated up front (one per name and one per '/', an
     * upper bound), so node pointers in by_ino stay valid. */
    size_t max_nodes = 1;
    for (size_t i = 0; i < n; i++) {
        max_nodes++;
        for (const char *p = names[i]; *p; p++)
            max_nodes += *p == '/';
    }
    t->n_secrets = n;
    t->nodes = calloc(max_nodes, sizeof(*t->nodes));
    t->node_of = calloc(n + 1, sizeof(*t->node_of));
    if (!t->nodes || !t->node_of)
        goto out;
    rc = tree_fill(t, inodes, names);
    if (rc < 0)
        goto out;
    rc = -ENOMEM;
    t->n_ino = (size_t)inodes->next;
    t->by_ino = calloc(t->n_ino, sizeof(*t->by_ino));
    if (!t->by_ino)
        goto out;
    for (size_t i = 0; i < t->n_nodes; i++)
        t->by_ino[t->nodes[i].ino] = &t->nodes[i];
    *out = t;
    t = NULL;
    rc = 0;
out:
    fs_tree_free(t);
    return rc;
}

void fs_tree_free(struct fs_tree *t)
{
    if (!t)
        return;
    for (size_t i = 0; t->nodes && i < t->n_nodes; i++)
        free(t->nodes[i].children);
    free(t->nodes);
    free(t->node_of);
    free(t->by_ino);
    free(t);
}
