/* tree.h - the directory tree fs.c serves, and the inode numbers of its names.
 *
 * Private to fuse/ (fs.c and its tests).
 *
 * Inode numbers come from a name -> inode table (struct fs_inodes) that the
 * filesystem owns for the life of the process: a name gets its number the
 * first time a tree holds it and keeps it, and a number is never given to
 * another name. A tree built later from another configuration therefore
 * keeps the numbers of the names that survive, and the kernel never sees a
 * number change meaning.
 *
 * A tree (struct fs_tree) is immutable once built, so the FUSE loop threads
 * read it with no lock; replacing it (a reload) is a pointer swap by its
 * owner. Finding a node by inode is one array index (by_ino), by name one
 * binary search of a directory's sorted children.
 */
#ifndef RS_FS_TREE_H
#define RS_FS_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FS_TREE_ROOT_INO 1   /* FUSE_ROOT_ID: the first number handed out */

/* Name -> inode. Only a tree build writes it; builds never run
 * concurrently (the owner serialises them), and readers of a tree never
 * touch it, so it has no lock. */
struct fs_inodes {
    struct fs_inode_slot *slots;  /* open addressing, cap a power of two */
    size_t cap, used;
    uint64_t next;                /* the number the next new name gets */
};

struct fs_node {
    uint64_t ino;
    uint64_t parent;       /* the parent directory's inode (the root's: its own) */
    const char *name;      /* last path segment; borrowed from the build's names, or "" */
    size_t name_len;
    bool is_dir;
    size_t secret;         /* files: index of the name in the build's list */
    size_t *children;      /* dirs: node indexes sorted by name (memcmp order) */
    size_t n_children;
};

struct fs_tree {
    struct fs_node *nodes;     /* nodes[0] is the root */
    size_t n_nodes;
    size_t *node_of;           /* name (secret) index -> node index */
    size_t n_secrets;
    const struct fs_node **by_ino; /* inode -> node, NULL when this tree lacks it */
    size_t n_ino;              /* by_ino's slots: every number handed out so far, + 1 */
};

void fs_inodes_init(struct fs_inodes *t);
void fs_inodes_cleanup(struct fs_inodes *t);
/* The inode of path[0..len) as a directory or a file, assigned now if the
 * table has never seen it. 0 or -ENOMEM. */
int fs_inodes_get(struct fs_inodes *t, const char *path, size_t len, bool is_dir, uint64_t *out)
    __attribute__((warn_unused_result));

/* Build the tree of names[0..n) ("a/b/c": directories a and a/b, file c),
 * numbering its nodes from inodes. names are borrowed and must outlive the
 * tree. *out is new. 0, -ENOMEM, or -EINVAL when two names collide (the
 * config refuses those first). */
int fs_tree_build(struct fs_inodes *inodes, const char *const *names, size_t n,
                  struct fs_tree **out) __attribute__((warn_unused_result));
void fs_tree_free(struct fs_tree *t);

/* The node of inode ino, or NULL. Borrowed from t. */
static inline const struct fs_node *fs_tree_node(const struct fs_tree *t, uint64_t ino)
{
    return ino < t->n_ino ? t->by_ino[ino] : NULL;
}

/* The child of directory dir named name[0..len), or NULL. Borrowed from t. */
const struct fs_node *fs_tree_child(const struct fs_tree *t, const struct fs_node *dir, const char *name,
                              size_t len);

/* The node of secret idx. Borrowed from t. */
static inline const struct fs_node *fs_tree_secret(const struct fs_tree *t, size_t idx)
{
    return &t->nodes[t->node_of[idx]];
}

#endif
