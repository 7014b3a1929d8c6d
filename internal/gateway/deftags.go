package gateway

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// applyDefaultTags sets every field of c that has a `default:` tag to that value, parsed
// as envconfig parses an environment variable of the field's type (lists split on
// commas). It lets DefaultConfig read the one source of the defaults without reading the
// environment, which envconfig always does.
func applyDefaultTags(c *Config) error {
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		def, ok := t.Field(i).Tag.Lookup("default")
		if !ok {
			continue
		}
		if err := setFromString(v.Field(i), def); err != nil {
			return fmt.Errorf("config: default of %s: %w", t.Field(i).Name, err)
		}
	}
	return nil
}

// setFromString parses s into f for the kinds Config uses.
func setFromString(f reflect.Value, s string) error {
	if f.Type() == reflect.TypeFor[time.Duration]() {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 0, f.Type().Bits())
		if err != nil {
			return err
		}
		f.SetInt(n)
	case reflect.Float64:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		f.SetFloat(x)
	case reflect.Slice:
		if f.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported list of %s", f.Type().Elem())
		}
		f.Set(reflect.ValueOf(strings.Split(s, ",")))
	default:
		return fmt.Errorf("unsupported kind %s", f.Kind())
	}
	return nil
}
