/* Fuzz target: IR text through the parser, the verifier and the whole pass
 * pipeline (verified after every pass). Bad text must fail with a message,
 * never crash; a graph that parses and verifies must get through every
 * pass or fail with a message. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_targets.h"
#include "ir.h"
#include "passes.h"

int mica_fuzz_ir_one(const uint8_t *data, size_t size)
{
    mica_diag_t d = {0};
    mica_graph_t *g = NULL;
    if (mica_graph_parse((const char *)data, size, &g, &d) != MICA_OK) {
        MICA_FUZZ_CHECK(d.msg[0], "parse failed without a message");
        mica_graph_release(g);
        return 0;
    }
    if (mica_graph_verify(g, &d) == MICA_OK) {
        mica_diag_t pd = {0};
        if (mica_pipeline_run(&g, NULL, true, &pd) != MICA_OK)
            MICA_FUZZ_CHECK(pd.msg[0], "pipeline failed without a message");
    } else {
        MICA_FUZZ_CHECK(d.msg[0], "verify failed without a message");
    }
    mica_graph_release(g);
    return 0;
}

MICA_FUZZ_DEFINE_ENTRY(ir)
