/* json_path: a value found in a JSON text by a path of member names, for the tests' checks of
 * what a server answered (parsed with jansson). An array element is named by its index ("0").
 * The path ends with NULL: json_path_string(body, "Messages", "0", "Body", NULL). */
#ifndef S3IMGFS_TEST_JSON_PATH_H
#define S3IMGFS_TEST_JSON_PATH_H

/* The string there, malloc'd; NULL when the text does not parse, the path leads nowhere or the
 * value is not a string. */
char *json_path_string(const char *text, ...) __attribute__((sentinel));
/* The value there as compact JSON text ("true", "3", "{\"a\":1}"), malloc'd; NULL when the text
 * does not parse or the path leads nowhere. */
char *json_path_text(const char *text, ...) __attribute__((sentinel));

#endif
