/* Chat templates against transformers' renderer (tests/fixtures/chat, made by make_chat_fixtures.py): the
 * templates of Llama 3, Qwen2, Mistral, Zephyr, Gemma and Phi-3 and one of the newer constructs (namespace,
 * slices, string methods, filters, tests), each for a conversation with and without a system message, with
 * and without the generation prompt: the same text, or the same error where the template raises one. A
 * construct outside the subset fails at parse time with its line and column. */
#include <cjson/cJSON.h>

#include "data/data.h"
#include "tests/test_util.h"

#define FIXTURE "tests/fixtures/chat/chat_templates.json"

TEST(renders_as_transformers_does) {
    char *text = hft_read_text(FIXTURE, NULL);
    cJSON *fx = text ? cJSON_Parse(text) : NULL;
    CHECK(fx != NULL, "%s: cannot read", FIXTURE);
    if (!fx) return free(text);
    const char *bos = cJSON_GetObjectItem(fx, "bos_token")->valuestring,
               *eos = cJSON_GetObjectItem(fx, "eos_token")->valuestring;
    const cJSON *templates = cJSON_GetObjectItem(fx, "templates"),
                *convs = cJSON_GetObjectItem(fx, "conversations"), *c;
    int n = 0, errors = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(fx, "cases")) {
        const char *name = cJSON_GetObjectItem(c, "template")->valuestring;
        const char *conv = cJSON_GetObjectItem(c, "conversation")->valuestring;
        bool gen = cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt"));
        hft_chat_template *t = NULL;
        CHECK_OK(hft_chat_template_parse(cJSON_GetObjectItem(templates, name)->valuestring, name, &t), NULL);
        if (!t) continue;
        char *messages = cJSON_PrintUnformatted(cJSON_GetObjectItem(convs, conv)), *out = NULL;
        hft_status st = hft_chat_template_render(t, messages, bos, eos, gen, &out);
        const cJSON *want = cJSON_GetObjectItem(c, "rendered"), *err = cJSON_GetObjectItem(c, "error");
        if (want) {
            CHECK(st == HFT_OK && strcmp(out, want->valuestring) == 0,
                  "%s, %s, generation prompt %d:\n got: [%s]\nwant: [%s]", name, conv, gen,
                  st == HFT_OK ? out : hft_error_message(), want->valuestring);
        } else {
            errors++;
            CHECK(st != HFT_OK && strstr(hft_error_message(), err->valuestring),
                  "%s, %s: expected the template's error '%s', got %s", name, conv, err->valuestring,
                  st == HFT_OK ? "a render" : hft_error_message());
        }
        n++;
        free(out), free(messages);
        hft_chat_template_free(t);
    }
    printf("  %d renders compared (%d of them the template's own errors)\n", n, errors);
    CHECK(n >= 28, "only %d cases", n);
    cJSON_Delete(fx);
    free(text);
}

TEST(unsupported_constructs_are_named_with_their_position) {
    hft_chat_template *t = NULL;
    CHECK(hft_chat_template_parse("Hi\n{% macro greet(x) %}{{ x }}{% endmacro %}", "t", &t) == HFT_EFORMAT &&
              strstr(hft_error_message(), "line 2, column 4: the statement 'macro' is not supported"),
          "macro: %s", hft_error_message());
    CHECK(hft_chat_template_parse("{{ messages | sort }}", "t", &t) == HFT_OK,
          "filters are checked when rendering");
    char *out = NULL;
    CHECK(hft_chat_template_render(t, "[]", "", "", false, &out) != HFT_OK &&
              strstr(hft_error_message(), "line 1, column 15: the filter 'sort' is not supported"),
          "sort: %s", hft_error_message());
    hft_chat_template_free(t);
    CHECK(hft_chat_template_parse("{% if x %}\n  {{ messages.pop() }}{% endif %}", "t", &t) == HFT_OK,
          "parsed");
    CHECK(hft_chat_template_render(t, "[]", "", "", false, &out) == HFT_OK && out && !*out,
          "x undefined: nothing");
    free(out);
    out = NULL;
    hft_chat_template_free(t);
    CHECK(hft_chat_template_parse("{{ 'a' }}\n  {{ messages.pop() }}", "t", &t) == HFT_OK, "parsed");
    CHECK(hft_chat_template_render(t, "[]", "", "", false, &out) != HFT_OK &&
              strstr(hft_error_message(), "line 2, column 18: the method 'pop' is not supported"),
          "pop: %s", hft_error_message());
    hft_chat_template_free(t);
    CHECK(hft_chat_template_parse("{% for m in messages %}{{ m }}", "t", &t) == HFT_EFORMAT &&
              strstr(hft_error_message(), "not closed"),
          "unclosed for: %s", hft_error_message());
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"renders_as_transformers_does", renders_as_transformers_does},
        {"unsupported_constructs_are_named_with_their_position",
         unsupported_constructs_are_named_with_their_position},
    };
    return test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
