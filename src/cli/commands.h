/* commands.h - one entry point per subcommand (src/cli/cmd_<name>.c).
 * Each takes argv with argv[0] = the command's name and returns the exit
 * code (design/CLI.md: 0 ok, 1 the work failed, 2 bad usage or input). */
#ifndef TUNE_COMMANDS_H
#define TUNE_COMMANDS_H

int cmd_check(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_fuse(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_logits(int argc, char **argv);

#endif
