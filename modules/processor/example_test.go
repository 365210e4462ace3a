package processor_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jetworker/jetworker/modules/processor"
)

// WordCount is a map-reduce processor: the root task maps one sub-task per
// document, each sub-task counts words, Reduce adds the counts.
type WordCount struct{ Docs []string }

func (w WordCount) Process(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	if tc.IsRoot() {
		subtasks := make([]any, len(w.Docs))
		for i, d := range w.Docs {
			subtasks[i] = d
		}
		if err := tc.Map(ctx, subtasks, "doc"); err != nil {
			return processor.Result{}, err
		}
		return processor.OK("mapped"), nil
	}
	var doc string
	if err := tc.Decode(&doc); err != nil {
		return processor.Result{}, err
	}
	words := 0
	inWord := false
	for _, r := range doc {
		if r == ' ' {
			inWord = false
		} else if !inWord {
			inWord, words = true, words+1
		}
	}
	return processor.OK(strconv.Itoa(words)), nil
}

func (WordCount) Reduce(ctx context.Context, tc *processor.TaskContext, results []processor.TaskResult) (processor.Result, error) {
	total := 0
	for _, r := range results {
		if n, err := strconv.Atoi(r.Message); err == nil && r.TaskName == "doc" {
			total += n
		}
	}
	return processor.OK(fmt.Sprintf("%d words", total)), nil
}

// Reduce is plain Go: a processor can be tested without a cluster.
func ExampleReducer() {
	var p processor.Reducer = WordCount{}
	res, _ := p.Reduce(context.Background(), processor.NewTaskContext(nil), []processor.TaskResult{
		{TaskID: "0", TaskName: processor.RootTaskName, Success: true, Message: "mapped"},
		{TaskID: "0.1", TaskName: "doc", Success: true, Message: "3"},
		{TaskID: "0.2", TaskName: "doc", Success: true, Message: "4"},
	})
	fmt.Println(res.Success, res.Message)
	// Output: true 7 words
}

// ProcessorFunc turns a function into a processor; a panic or a zero
// Result becomes a failure through processor.Run, as the engine runs it.
func ExampleRun() {
	boom := processor.ProcessorFunc(func(context.Context, *processor.TaskContext) (processor.Result, error) {
		panic("out of coffee")
	})
	res := processor.Run(context.Background(), 0, func(ctx context.Context) (processor.Result, error) {
		return boom.Process(ctx, processor.NewTaskContext(nil))
	})
	firstLine, _, _ := strings.Cut(res.Message, "\n")
	fmt.Println(res.Success, firstLine)
	// Output: false panic: out of coffee
}
