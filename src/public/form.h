/* The bodies the public unsubscribe listener accepts: RFC 8058's one-click
 * body and the page's form, each as application/x-www-form-urlencoded or
 * multipart/form-data. Pure functions of their input (fuzzed). */
#ifndef OPTSYNC_PUBLIC_FORM_H
#define OPTSYNC_PUBLIC_FORM_H

#include <stdbool.h>
#include <stddef.h>

#define FORM_BODY_MAX    (8u << 10) /* larger bodies get 413 */
#define FORM_PURPOSE_MAX 16         /* purposes one form may name */

struct form {
	bool one_click;      /* List-Unsubscribe=One-Click */
	bool unsubscribe;    /* the page's button: action=unsubscribe */
	bool leave_purposes; /* the page's purpose button: action=purposes */
	size_t npurposes;    /* the page's purpose checkboxes: purpose=NAME */
	char purposes[FORM_PURPOSE_MAX][65];
};

/* Parse body (len bytes) sent with Content-Type ctype (NULL: none).
 * 0, or -1 for a body neither form nor one-click can be read from (an
 * unknown content type, a broken encoding, a missing boundary). Unknown
 * fields are ignored. */
int form_parse(const char *ctype, const char *body, size_t len, struct form *out);

#endif
