// Package clientgen writes a service's typed client from its declared API,
// so the client cannot drift from the declarations and nobody writes it
// by hand. A service package keeps one line of its client:
//
//	func NewClient(build transport.ClientFactory) Service { return client{API.Client(build)} }
//
// and clientgen writes client_gen.go beside it: the client type and, for
// each method of the package's Service interface, a method that sends the
// method's declaration (the transport.Method passed to
// transport.NewAPI[Service] whose Name is the method's):
//
//	func (c client) Reserve(ctx context.Context, orderID string, items []Item) (Reservation, error) {
//		return reserve.Call(ctx, c.e, ReserveRequest{OrderID: orderID, Items: items})
//	}
//
// The arguments fill the request's fields of the same name, in any case
// (sku fills SKU), converted when only their named types differ (a string
// into a Password). An argument that fills an auth:"user" field is not
// sent: the bearer token in the context decides the user. A method taking
// its request type whole passes it on. The answer is the response itself,
// or the one exported field of a response struct holding it; an
// error-only method returns the call's error.
//
// Whatever it cannot map is an error naming the method, never a method
// left out: a client missing a method would not compile, or worse, would
// compile against a stale file. A method that needs a body of its own is
// written by hand beside NewClient and marked with the directive
// //clientgen:handwritten in its doc comment; clientgen then leaves it
// out, and refuses any hand-written client method that is not marked.
package clientgen

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/build"
	"go/constant"
	"go/format"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

const (
	// FileName is the generated file, beside the package's api.go.
	FileName = "client_gen.go"
	// Command regenerates every client (go generate ./...).
	Command = "make generate"
	// Handwritten marks a client method written by hand, in its doc
	// comment.
	Handwritten = "//clientgen:handwritten"

	transportPath = "github.com/glasshouse-dev/glasshouse/transport"
	clientType    = "client"
)

// Generate returns what client_gen.go should hold for the package in dir.
// It type-checks the package twice: without its client_gen.go, to read the
// declarations whatever that file holds now, and with the new one, so a
// client that would not compile is an error here, not at the next build.
func Generate(dir string) ([]byte, error) { return generate(dir, nil) }

// generate is Generate with some files' contents replaced (by absolute
// path), for tests.
func generate(dir string, overlay map[string][]byte) ([]byte, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	bp, err := build.ImportDir(dir, 0)
	if err != nil {
		return nil, err
	}
	out := filepath.Join(dir, FileName)
	files := map[string][]byte{}
	for _, name := range bp.GoFiles {
		if name != FileName {
			files[filepath.Join(dir, name)] = nil // read from disk
		}
	}
	for path, src := range overlay {
		files[path] = src
	}
	// Only the client type: hand-written methods on it still check.
	files[out] = render(bp.Name, "", nil, nil)
	pkg, err := load(dir, files)
	if err != nil {
		return nil, err
	}
	api, err := read(pkg, out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pkg.Name(), err)
	}
	src, err := format.Source(render(bp.Name, api.from, api.imports, api.methods))
	if err != nil {
		return nil, fmt.Errorf("%s: the generated client does not parse: %w", pkg.Name(), err)
	}
	files[out] = src
	if pkg, err = load(dir, files); err != nil {
		return nil, err
	}
	if len(pkg.errs) > 0 {
		var msgs []string
		for _, e := range pkg.errs {
			msgs = append(msgs, e.Error())
		}
		return nil, fmt.Errorf("%s: the package does not compile with the generated client:\n\t%s", pkg.Name(), strings.Join(msgs, "\n\t"))
	}
	return src, nil
}

// checked is a type-checked package and its type errors, which are the
// caller's to judge.
type checked struct {
	*types.Package
	fset  *token.FileSet
	files []*ast.File
	info  *types.Info
	errs  []error
}

// load parses and type-checks files (a nil content is read from disk),
// importing their imports from the export data the go command builds.
func load(dir string, files map[string][]byte) (*checked, error) {
	pkg := &checked{fset: token.NewFileSet(), info: &types.Info{
		Types:     map[ast.Expr]types.TypeAndValue{},
		Defs:      map[*ast.Ident]types.Object{},
		Uses:      map[*ast.Ident]types.Object{},
		Instances: map[*ast.Ident]types.Instance{},
	}}
	imports := map[string]bool{}
	for _, path := range slices.Sorted(maps.Keys(files)) {
		var src any // nil: read the file
		if b := files[path]; b != nil {
			src = b
		}
		f, err := parser.ParseFile(pkg.fset, path, src, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		pkg.files = append(pkg.files, f)
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p != "unsafe" && p != "C" {
				imports[p] = true
			}
		}
	}
	exports, err := exportData(dir, slices.Sorted(maps.Keys(imports)))
	if err != nil {
		return nil, err
	}
	conf := types.Config{
		Importer: importer.ForCompiler(pkg.fset, "gc", func(path string) (io.ReadCloser, error) {
			if f, ok := exports[path]; ok {
				return os.Open(f)
			}
			return nil, fmt.Errorf("no export data for %s", path)
		}),
		Error: func(err error) { pkg.errs = append(pkg.errs, err) },
	}
	pkg.Package, _ = conf.Check(pkg.files[0].Name.Name, pkg.fset, pkg.files, pkg.info)
	return pkg, nil
}

// exportData asks the go command (building what it must) for the export
// data file of each package in paths and of their dependencies.
func exportData(dir string, paths []string) (map[string]string, error) {
	exports := map[string]string{}
	if len(paths) == 0 {
		return exports, nil
	}
	cmd := exec.Command("go", append([]string{"list", "-deps", "-export", "-f", "{{.ImportPath}} {{.Export}}"}, paths...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %v\n%s", strings.Join(paths, " "), err, stderr.Bytes())
	}
	for line := range strings.Lines(string(out)) {
		if path, file, ok := strings.Cut(strings.TrimSpace(line), " "); ok && file != "" {
			exports[path] = file
		}
	}
	return exports, nil
}

// api is what the generated file needs: its imports (path to name) and
// each method's source.
type api struct {
	from    string // the file that calls NewAPI
	imports map[string]string
	methods []string
}

// declaration is one transport.Method passed to NewAPI[Service].
type declaration struct {
	varName     string
	name, route string
	req, resp   types.Type
}

func read(pkg *checked, generated string) (*api, error) {
	scope := pkg.Scope()
	obj, ok := scope.Lookup("Service").(*types.TypeName)
	if !ok {
		return nil, errors.New("no type Service")
	}
	service := obj.Type()
	iface, ok := service.Underlying().(*types.Interface)
	if !ok {
		return nil, errors.New("Service is not an interface")
	}

	var files []*ast.File
	for _, f := range pkg.files {
		if pkg.fset.File(f.Pos()).Name() != generated {
			files = append(files, f)
		}
	}
	inits := map[*types.Var]ast.Expr{} // each package-level var's initial value
	var call *ast.CallExpr             // the NewAPI[Service] call
	var handwritten []string
	for _, f := range files {
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch s := spec.(type) {
					case *ast.TypeSpec:
						if s.Name.Name == clientType {
							return nil, fmt.Errorf("type %s is declared by hand in %s; %s declares it", clientType, fileOf(pkg, s.Pos()), FileName)
						}
					case *ast.ValueSpec:
						for i, n := range s.Names {
							if v, ok := pkg.info.Defs[n].(*types.Var); ok && i < len(s.Values) && d.Tok == token.VAR {
								inits[v] = s.Values[i]
								if c := newAPICall(pkg.info, s.Values[i], service); c != nil {
									if call != nil {
										return nil, fmt.Errorf("transport.NewAPI[Service] is called twice, in %s and %s", fileOf(pkg, call.Pos()), fileOf(pkg, c.Pos()))
									}
									call = c
								}
							}
						}
					}
				}
			case *ast.FuncDecl:
				marked := d.Doc != nil && slices.ContainsFunc(d.Doc.List, func(c *ast.Comment) bool { return strings.TrimSpace(c.Text) == Handwritten })
				isClient := d.Recv != nil && len(d.Recv.List) == 1 && receiverName(d.Recv.List[0].Type) == clientType
				inService := isClient && method(iface, d.Name.Name) != nil
				switch {
				case marked && !inService:
					return nil, fmt.Errorf("%s: %s marks %s, which is not a method of the client that Service has", fileOf(pkg, d.Pos()), Handwritten, d.Name.Name)
				case inService && !marked:
					return nil, fmt.Errorf("%s: the client's %s is written by hand; mark it %s, or delete it so that clientgen writes it", fileOf(pkg, d.Pos()), d.Name.Name, Handwritten)
				case inService:
					handwritten = append(handwritten, d.Name.Name)
				}
			}
		}
	}
	if call == nil {
		return nil, errors.New("no package-level var is transport.NewAPI[Service](...)")
	}

	decls := map[string]declaration{}
	var order []string
	for _, arg := range call.Args[1:] {
		d, err := declared(pkg, arg, service, inits)
		if err != nil {
			return nil, err
		}
		if method(iface, d.name) == nil {
			return nil, fmt.Errorf("%s declares %q, which is not a method of Service", d.varName, d.name)
		}
		if other, dup := decls[d.name]; dup {
			return nil, fmt.Errorf("%s is declared twice, by %s and %s", d.name, other.varName, d.varName)
		}
		decls[d.name] = d
		order = append(order, d.name)
	}
	var missing []string
	for m := range iface.Methods() {
		if _, ok := decls[m.Name()]; !ok {
			missing = append(missing, m.Name())
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("%s: no declaration in the transport.NewAPI[Service] call for %s", fileOf(pkg, call.Pos()), strings.Join(missing, ", "))
	}

	a := &api{from: filepath.Base(pkg.fset.Position(call.Pos()).Filename), imports: map[string]string{"context": "context", transportPath: "transport"}}
	qualify := func(p *types.Package) string {
		if p == pkg.Package {
			return ""
		}
		a.imports[p.Path()] = p.Name()
		return p.Name()
	}
	for _, name := range order {
		if slices.Contains(handwritten, name) {
			continue
		}
		src, err := clientMethod(method(iface, name), decls[name], qualify)
		if err != nil {
			return nil, fmt.Errorf("Service.%s: %w", name, err)
		}
		a.methods = append(a.methods, src)
	}
	return a, nil
}

// newAPICall returns e if it is a call of transport.NewAPI[service].
func newAPICall(info *types.Info, e ast.Expr, service types.Type) *ast.CallExpr {
	call, ok := ast.Unparen(e).(*ast.CallExpr)
	if !ok {
		return nil
	}
	fun := call.Fun
	if ix, ok := fun.(*ast.IndexExpr); ok {
		fun = ix.X
	}
	var id *ast.Ident
	switch f := fun.(type) {
	case *ast.SelectorExpr:
		id = f.Sel
	case *ast.Ident:
		id = f
	default:
		return nil
	}
	fn, ok := info.Uses[id].(*types.Func)
	if !ok || fn.Pkg() == nil || fn.Pkg().Path() != transportPath || fn.Name() != "NewAPI" {
		return nil
	}
	inst := info.Instances[id]
	if inst.TypeArgs == nil || inst.TypeArgs.Len() != 1 || !types.Identical(inst.TypeArgs.At(0), service) || len(call.Args) < 1 {
		return nil
	}
	return call
}

// declared reads one argument of NewAPI: a package-level var of type
// transport.Method[Service, Req, Resp] set to a literal with a constant
// Name.
func declared(pkg *checked, arg ast.Expr, service types.Type, inits map[*types.Var]ast.Expr) (declaration, error) {
	id, ok := ast.Unparen(arg).(*ast.Ident)
	v, isVar := pkg.info.Uses[id].(*types.Var)
	if !ok || !isVar || v.Parent() != pkg.Scope() {
		return declaration{}, fmt.Errorf("%s: the arguments of transport.NewAPI must be package-level vars, each a transport.Method", fileOf(pkg, arg.Pos()))
	}
	d := declaration{varName: v.Name()}
	named, ok := types.Unalias(v.Type()).(*types.Named)
	if !ok || named.Obj().Pkg() == nil || named.Obj().Pkg().Path() != transportPath || named.Obj().Name() != "Method" {
		return d, fmt.Errorf("%s is a %s, not a transport.Method", v.Name(), v.Type())
	}
	if targs := named.TypeArgs(); !types.Identical(targs.At(0), service) {
		return d, fmt.Errorf("%s is a method of %s, not of Service", v.Name(), targs.At(0))
	} else {
		d.req, d.resp = targs.At(1), targs.At(2)
	}
	lit, ok := ast.Unparen(inits[v]).(*ast.CompositeLit)
	if !ok {
		return d, fmt.Errorf("%s must be set to a transport.Method literal, so that its Name can be read", v.Name())
	}
	for _, elt := range lit.Elts {
		kv, ok := elt.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		key, _ := kv.Key.(*ast.Ident)
		tv := pkg.info.Types[kv.Value]
		if key == nil || tv.Value == nil || tv.Value.Kind() != constant.String {
			continue
		}
		switch key.Name {
		case "Name":
			d.name = constant.StringVal(tv.Value)
		case "Route":
			d.route = constant.StringVal(tv.Value)
		}
	}
	if d.name == "" {
		return d, fmt.Errorf("%s has no constant Name", v.Name())
	}
	return d, nil
}

// clientMethod writes the client method that sends d for m.
func clientMethod(m *types.Func, d declaration, qualify types.Qualifier) (string, error) {
	sig := m.Type().(*types.Signature)
	if sig.Variadic() {
		return "", errors.New("a variadic method cannot be mapped to a request")
	}
	params := sig.Params()
	if params.Len() == 0 || !isNamed(params.At(0).Type(), "context", "Context") {
		return "", errors.New("its first parameter must be a context.Context")
	}
	reserved := map[string]bool{"c": true, "ctx": true, "resp": true, "err": true, d.varName: true}
	sigParams := []string{"ctx context.Context"}
	var notSent []string
	var rest []*types.Var
	for i := 1; i < params.Len(); i++ {
		p := params.At(i)
		if p.Name() == "" || p.Name() == "_" {
			return "", fmt.Errorf("parameter %d has no name to match a field of %s", i+1, types.TypeString(d.req, qualify))
		}
		if reserved[p.Name()] {
			return "", fmt.Errorf("parameter %s has a name the generated client uses; rename it", p.Name())
		}
		rest = append(rest, p)
	}

	var req string
	switch st, isStruct := d.req.Underlying().(*types.Struct); {
	case len(rest) == 1 && types.Identical(rest[0].Type(), d.req):
		sigParams = append(sigParams, rest[0].Name()+" "+types.TypeString(rest[0].Type(), qualify))
		req = rest[0].Name()
	case !isStruct:
		return "", fmt.Errorf("its request %s is not a struct", types.TypeString(d.req, qualify))
	default:
		filled := map[int]bool{}
		var fields []string
		for _, p := range rest {
			i, err := field(st, p.Name(), d.req, qualify)
			if err != nil {
				return "", err
			}
			if filled[i] {
				return "", fmt.Errorf("two parameters fill %s.%s", types.TypeString(d.req, qualify), st.Field(i).Name())
			}
			filled[i] = true
			f, typ := st.Field(i), types.TypeString(p.Type(), qualify)
			if _, auth := reflect.StructTag(st.Tag(i)).Lookup("auth"); auth {
				sigParams = append(sigParams, "_ "+typ)
				notSent = append(notSent, p.Name())
				continue
			}
			sigParams = append(sigParams, p.Name()+" "+typ)
			switch {
			case types.Identical(p.Type(), f.Type()):
				fields = append(fields, f.Name()+": "+p.Name())
			case types.Identical(p.Type().Underlying(), f.Type().Underlying()):
				fields = append(fields, fmt.Sprintf("%s: %s(%s)", f.Name(), types.TypeString(f.Type(), qualify), p.Name()))
			default:
				return "", fmt.Errorf("parameter %s is %s, but %s.%s is %s", p.Name(), typ,
					types.TypeString(d.req, qualify), f.Name(), types.TypeString(f.Type(), qualify))
			}
		}
		for i := range st.NumFields() {
			if f := st.Field(i); f.Exported() && !filled[i] && travels(st.Tag(i)) {
				return "", fmt.Errorf("no parameter fills %s.%s (a parameter fills the field of its name, in any case)", types.TypeString(d.req, qualify), f.Name())
			}
		}
		req = types.TypeString(d.req, qualify) + "{" + strings.Join(fields, ", ") + "}"
	}

	results := sig.Results()
	if results.Len() == 0 || results.Len() > 2 || !types.Identical(results.At(results.Len()-1).Type(), types.Universe.Lookup("error").Type()) {
		return "", errors.New("it must return an error, or one value and an error")
	}
	call := fmt.Sprintf("%s.Call(ctx, c.e, %s)", d.varName, req)
	var sigResults, body string
	if results.Len() == 1 {
		sigResults = "error"
		body = "_, err := " + call + "\nreturn err"
	} else {
		t := results.At(0).Type()
		sigResults = "(" + types.TypeString(t, qualify) + ", error)"
		if types.Identical(t, d.resp) {
			body = "return " + call
		} else {
			f, err := only(d.resp, t, qualify)
			if err != nil {
				return "", err
			}
			body = "resp, err := " + call + "\nreturn resp." + f + ", err"
		}
	}

	var doc strings.Builder
	fmt.Fprintf(&doc, "// %s sends %s", m.Name(), d.varName)
	if d.route != "" {
		fmt.Fprintf(&doc, " (%s)", d.route)
	}
	doc.WriteString(".")
	if len(notSent) > 0 {
		fmt.Fprintf(&doc, "\n// Its %s is not sent: the bearer token in ctx decides the user.", strings.Join(notSent, " and "))
	}
	return fmt.Sprintf("%s\nfunc (c %s) %s(%s) %s {\n%s\n}\n", doc.String(), clientType, m.Name(), strings.Join(sigParams, ", "), sigResults, body), nil
}

// field returns the index of st's exported field named name in any case.
func field(st *types.Struct, name string, req types.Type, qualify types.Qualifier) (int, error) {
	found := -1
	var names []string
	for i := range st.NumFields() {
		f := st.Field(i)
		if !f.Exported() {
			continue
		}
		names = append(names, f.Name())
		if strings.EqualFold(f.Name(), name) {
			if found >= 0 {
				return 0, fmt.Errorf("parameter %s matches both %s and %s of %s", name, st.Field(found).Name(), f.Name(), types.TypeString(req, qualify))
			}
			found = i
		}
	}
	if found < 0 {
		return 0, fmt.Errorf("parameter %s matches no field of %s (%s); rename it, or write this client method by hand, marked %s",
			name, types.TypeString(req, qualify), strings.Join(names, ", "), Handwritten)
	}
	return found, nil
}

// only returns the name of resp's one exported field, which must be a t.
func only(resp, t types.Type, qualify types.Qualifier) (string, error) {
	var exported []*types.Var
	st, ok := resp.Underlying().(*types.Struct)
	for i := 0; ok && i < st.NumFields(); i++ {
		if st.Field(i).Exported() {
			exported = append(exported, st.Field(i))
		}
	}
	if !ok || len(exported) != 1 || !types.Identical(exported[0].Type(), t) {
		return "", fmt.Errorf("it returns %s, but its declaration answers %s, which is neither that nor a struct of one exported %s field",
			types.TypeString(t, qualify), types.TypeString(resp, qualify), types.TypeString(t, qualify))
	}
	return exported[0].Name(), nil
}

// travels says whether a request field with this tag is sent: a path,
// query or header value, or a JSON body field. An auth field is not.
func travels(tag string) bool {
	st := reflect.StructTag(tag)
	for _, key := range []string{"path", "query", "header"} {
		if _, ok := st.Lookup(key); ok {
			return true
		}
	}
	_, auth := st.Lookup("auth")
	return !auth && st.Get("json") != "-"
}

func method(iface *types.Interface, name string) *types.Func {
	for m := range iface.Methods() {
		if m.Name() == name {
			return m
		}
	}
	return nil
}

func isNamed(t types.Type, pkg, name string) bool {
	n, ok := types.Unalias(t).(*types.Named)
	return ok && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == pkg && n.Obj().Name() == name
}

// isStd says whether path is in the standard library, whose first
// element has no dot.
func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

func receiverName(e ast.Expr) string {
	if s, ok := e.(*ast.StarExpr); ok {
		e = s.X
	}
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

func fileOf(pkg *checked, pos token.Pos) string {
	p := pkg.fset.Position(pos)
	return filepath.Base(p.Filename) + ":" + strconv.Itoa(p.Line)
}

// render writes the generated file, unformatted.
func render(pkgName, from string, imports map[string]string, methods []string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by clientgen from the API declared in %s; DO NOT EDIT.\n", from)
	fmt.Fprintf(&b, "// Change the declarations or the Service interface, then run `%s`.\n\n", Command)
	fmt.Fprintf(&b, "package %s\n\n", pkgName)
	paths := []string{transportPath}
	if len(methods) > 0 {
		paths = slices.Collect(maps.Keys(imports))
	}
	// The standard library first, as goimports groups them.
	slices.SortFunc(paths, func(a, b string) int {
		if isStd(a) != isStd(b) {
			if isStd(a) {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	b.WriteString("import (\n")
	for i, p := range paths {
		if i > 0 && isStd(paths[i-1]) && !isStd(p) {
			b.WriteString("\n")
		}
		if name := imports[p]; name != "" && name != filepath.Base(p) {
			fmt.Fprintf(&b, "%s %q\n", name, p)
		} else {
			fmt.Fprintf(&b, "%q\n", p)
		}
	}
	b.WriteString(")\n\n")
	fmt.Fprintf(&b, "// %s is Service over the endpoints API.Client builds (see NewClient):\n", clientType)
	fmt.Fprintf(&b, "// each method sends the call declared for it in %s.\n", from)
	fmt.Fprintf(&b, "type %s struct{ e transport.Endpoints }\n", clientType)
	for _, m := range methods {
		b.WriteString("\n" + m)
	}
	return b.Bytes()
}
